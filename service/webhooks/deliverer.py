"""The webhook deliverer: one per database (an advisory lock on its own connection), so a
replica that dies hands over to another. Each active subscription is a reader of the log from
its stored position; an event it receives is POSTed, signed, and the position moves past it
only after a 2xx. So delivery is at least once, in log order per subscription, and survives
restarts and hand-overs: a delivery cut off mid-way is sent again with the same
`X-FTQ-Delivery` id. A failure waits (exponential backoff with jitter) and then retries the
same event; after FTQ_WEBHOOK_MAX_ATTEMPTS the subscription is marked failing and waits for
`POST /webhooks/{id}/enable`, which resumes where it stopped."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import msgspec
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from events.domain.aggregates import is_job_event
from events.domain.webhooks import (
    WebhookFailing,
    address_problem,
    backoff_s,
    delivery_id,
    receives,
    signature,
)
from events.store import locks
from events.store.log import Cursor, RecordedEvent, read_all
from events.store.tail import LogWatcher
from service import metrics
from service.admission.leader import Leadership
from service.api.streams import history_event
from service.clock import utcnow
from service.webhooks import QUERIES
from service.webhooks.sealing import SealingError, unseal_any
from service.webhooks.subscriptions import record_failing

log = structlog.get_logger(__name__)

TIMEOUT: Final = aiohttp.ClientTimeout(total=5)
BATCH: Final = 200
IDLE_S: Final = 1.0  # due retries are looked for at least this often
FOLLOWER_RETRY_S: Final = 2.0
META: Final = {"actor": "ftq-webhooks"}
_encoder: Final = msgspec.json.Encoder()


class RefusedAddress(OSError):
    """The target resolves to an address webhooks may not call."""


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then refuses loopback, private and link-local addresses: checked at
    delivery time, on the addresses actually connected to (no DNS-rebinding window)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            if problem := address_problem(entry["host"]):
                raise RefusedAddress(problem)
        return found

    async def close(self) -> None:
        await self._inner.close()


def literal_address_problem(url: str) -> str | None:
    """aiohttp does not resolve an IP literal, so the resolver never sees it: check it here."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return address_problem(host)


@dataclass
class _Subscription:
    id: str
    owner_id: str
    scope: Any
    user_id: str | None
    url: str
    types: frozenset[str]
    sealed: bytes
    cursor: Cursor
    attempts: int


def _subscription(row: asyncpg.Record) -> _Subscription:
    return _Subscription(
        id=row[0],
        owner_id=row[1],
        scope=row[2],
        user_id=row[3],
        url=row[4],
        types=frozenset(row[5]),
        sealed=row[6],
        cursor=Cursor(row[7], row[8]),
        attempts=row[9],
    )


def delivery_body(row: RecordedEvent, webhook_id: str, user: str | None) -> bytes:
    """`{"id", "position", "type", "job_id", "user", "recorded_at", "data"}`, data redacted."""
    shown = history_event(row, user)
    return _encoder.encode(
        {
            "id": delivery_id(webhook_id, row.position),
            "position": shown.position,
            "type": shown.type,
            "job_id": shown.job_id,
            "user": user,
            "recorded_at": shown.recorded_at,
            "data": shown.data,
        }
    )


class WebhookDeliverer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        keys: Sequence[bytes],
        watcher: LogWatcher | None,
        *,
        max_attempts: int,
        allow_private: bool,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._pool = pool
        self._keys = tuple(keys)  # the current master key first, then older ones
        self._watcher = watcher
        self._max_attempts = max_attempts
        self._allow_private = allow_private
        self._jitter = jitter
        self._leadership = Leadership(connect, key=locks.WEBHOOKS)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._owners: dict[str, tuple[str, str] | None] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ftq-webhooks")

    def _client(self) -> aiohttp.ClientSession:
        """The deliveries' HTTP session (made on first use, inside the running loop)."""
        if self._session is None:
            resolver = DefaultResolver() if self._allow_private else GuardedResolver()
            connector = aiohttp.TCPConnector(resolver=resolver, limit=16)
            self._session = aiohttp.ClientSession(connector=connector, timeout=TIMEOUT)
        return self._session

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._leadership.release()
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        subscription = self._watcher.subscribe() if self._watcher is not None else None
        try:
            while True:
                if not await self._leadership.acquire():
                    await asyncio.sleep(FOLLOWER_RETRY_S)
                    continue
                if subscription is not None:
                    subscription.event.clear()
                try:
                    await self.deliver_due()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("webhooks.round_failed", error=type(exc).__name__)
                if subscription is not None:
                    await subscription.wait(IDLE_S)
                else:
                    await asyncio.sleep(IDLE_S)
        finally:
            if subscription is not None:
                subscription.close()

    async def deliver_due(self) -> None:
        """One round: every due active subscription reads on from its position."""
        rows = await self._pool.fetch(QUERIES["webhook_due"])
        metrics.WEBHOOKS_FAILING.set(
            await self._pool.fetchval("SELECT count(*) FROM webhooks WHERE state = 'failing'")
        )
        for row in rows:
            await self._drain(_subscription(row))

    async def _drain(self, sub: _Subscription) -> None:
        try:
            secret = unseal_any(self._keys, sub.sealed, sub.id)
        except SealingError as exc:
            log.error("webhooks.secret_unreadable", webhook_id=sub.id, error=str(exc))
            return
        while True:
            async with self._pool.acquire() as conn:
                events = await read_all(conn, sub.cursor, BATCH)
            if not events:
                return
            owners = await self._owners_of(events)
            for event in events:
                owner = owners.get(event.stream_id)
                if not receives(
                    sub.scope,
                    sub.owner_id,
                    sub.user_id,
                    sub.types,
                    event.type,
                    None if owner is None else owner[0],
                ):
                    sub.cursor = event.cursor
                    continue
                await self._advance(sub, delivered=0)  # past the skipped ones first
                error = await self._post(sub, secret, event, None if owner is None else owner[1])
                if error is not None:
                    await self._failed(sub, event, error)
                    return
                sub.cursor, sub.attempts = event.cursor, 0
                if not await self._advance(sub, delivered=1):
                    return  # deleted or disabled meanwhile
            await self._advance(sub, delivered=0)

    async def _advance(self, sub: _Subscription, *, delivered: int) -> bool:
        status = await self._pool.execute(
            QUERIES["webhook_advance"],
            sub.id,
            sub.cursor.transaction_id,
            sub.cursor.position,
            delivered,
        )
        return status.endswith(" 1")

    async def _owners_of(self, events: list[RecordedEvent]) -> dict[str, tuple[str, str] | None]:
        """(owner id, owner email) of each job stream among `events` (cached: no job changes
        owner)."""
        jobs = {e.stream_id for e in events if is_job_event(e.type)}
        unseen = list(jobs - self._owners.keys())
        if unseen:
            rows = await self._pool.fetch(QUERIES["webhook_job_owners"], unseen)
            found = {r[0]: (r[1], r[2]) for r in rows}
            self._owners.update((job_id, found.get(job_id)) for job_id in unseen)
        return {e.stream_id: self._owners.get(e.stream_id) for e in events}

    async def _post(
        self, sub: _Subscription, secret: bytes, event: RecordedEvent, user: str | None
    ) -> str | None:
        """POST one delivery; None on a 2xx, else what went wrong (the body is not kept)."""
        if not self._allow_private and (problem := literal_address_problem(sub.url)):
            return problem
        body = delivery_body(event, sub.id, user)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ftq-webhooks",
            "X-FTQ-Event": event.type,
            "X-FTQ-Delivery": delivery_id(sub.id, event.position),
            "X-FTQ-Signature": signature(secret, body),
        }
        try:
            async with self._client().post(
                sub.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    metrics.WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
                    return None
                error = f"HTTP {resp.status}"
        except RefusedAddress as exc:
            error = str(exc)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        metrics.WEBHOOK_DELIVERIES.labels(outcome="failed").inc()
        return error

    async def _failed(self, sub: _Subscription, event: RecordedEvent, error: str) -> None:
        attempts = sub.attempts + 1
        if attempts >= self._max_attempts:
            log.warning(
                "webhooks.failing", webhook_id=sub.id, position=event.position, attempts=attempts,
                error=error,
            )  # fmt: skip
            failing = WebhookFailing(
                at=utcnow(),
                webhook_id=sub.id,
                position=event.position,
                attempts=attempts,
                error=error,
            )
            async with self._pool.acquire() as conn:
                await record_failing(conn, failing, META)
            return
        wait = backoff_s(attempts, self._jitter())
        log.info("webhooks.retry_later", webhook_id=sub.id, attempts=attempts, wait_s=round(wait))
        await self._pool.execute(QUERIES["webhook_retry_later"], sub.id, attempts, wait, error)
