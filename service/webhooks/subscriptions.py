"""Create, list, delete and re-enable webhook subscriptions. Each change is appended to the
log (stream `webhook:<id>`, without the secret) in the same transaction as the `webhooks` row
that holds the sealed secret and the reader's position."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from events.domain import codec
from events.domain.webhooks import (
    Scope,
    WebhookDeleted,
    WebhookEnabled,
    WebhookEvent,
    WebhookFailing,
    WebhookState,
    WebhookSubscribed,
    webhook_stream,
)
from events.store.log import (
    Connection,
    NewEvent,
    append,
    head_cursor,
    notify_appended,
    read_stream,
)
from service.webhooks import QUERIES
from service.webhooks.sealing import seal


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """A subscription as `GET /webhooks` shows it (never its secret)."""

    id: str
    owner_id: str
    scope: Scope
    user_id: str | None
    url: str
    types: list[str]
    state: WebhookState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered: int
    position: int
    created_at: datetime


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(
        id=row[0],
        owner_id=row[1],
        scope=row[2],
        user_id=row[3],
        url=row[4],
        types=list(row[5]),
        state=row[6],
        attempts=row[7],
        next_attempt_at=row[8],
        last_error=row[9],
        delivered=row[10],
        position=row[11],
        created_at=row[12],
    )


async def _record(
    conn: Connection, webhook_id: str, event: WebhookEvent, metadata: Mapping[str, Any]
) -> None:
    """Append to the subscription's stream; callers hold its row lock (or create it), so no
    two writers race for the next version."""
    stream = webhook_stream(webhook_id)
    version = len(await read_stream(conn, stream))
    type_ = codec.event_type(event)
    await append(conn, stream, version, [NewEvent(type_, codec.encode(event))], metadata)


async def create(
    pool: asyncpg.Pool,
    event: WebhookSubscribed,
    secret: str,
    key: bytes,
    metadata: Mapping[str, Any],
) -> Webhook:
    """Record the subscription; its reader starts after the log's current end (new events)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            start = await head_cursor(conn)
            await _record(conn, event.webhook_id, event, metadata)
            await conn.execute(
                QUERIES["webhook_insert"],
                event.webhook_id,
                event.owner_id,
                event.scope,
                event.user_id,
                event.url,
                event.types,
                seal(key, secret, event.webhook_id),
                start.transaction_id,
                start.position,
            )
        await notify_appended(conn, [webhook_stream(event.webhook_id)])
        found = await get(conn, event.webhook_id)
    assert found is not None
    return found


async def listed(pool: asyncpg.Pool, owner_id: str | None) -> list[Webhook]:
    return [_webhook(r) for r in await pool.fetch(QUERIES["webhook_list"], owner_id)]


async def get(conn: asyncpg.Pool | Connection, webhook_id: str) -> Webhook | None:
    row = await conn.fetchrow(QUERIES["webhook_get"], webhook_id)
    return None if row is None else _webhook(row)


async def record_failing(
    conn: Connection, event: WebhookFailing, metadata: Mapping[str, Any]
) -> None:
    """The deliverer gave up: mark the subscription failing, recorded in the log."""
    async with conn.transaction():
        if await conn.fetchval(QUERIES["webhook_lock"], event.webhook_id) != "active":
            return
        await _record(conn, event.webhook_id, event, metadata)
        await conn.execute(
            QUERIES["webhook_mark_failing"], event.webhook_id, event.attempts, event.error
        )
    await notify_appended(conn, [webhook_stream(event.webhook_id)])


async def change_state(
    pool: asyncpg.Pool,
    webhook: Webhook,
    state: WebhookState,
    by: str,
    at: datetime,
    metadata: Mapping[str, Any],
) -> None:
    """Delete (`deleted`) or re-enable (`active`) a subscription, recorded in the log."""
    event: WebhookEvent = (
        WebhookDeleted(at=at, webhook_id=webhook.id, by=by)
        if state == "deleted"
        else WebhookEnabled(at=at, webhook_id=webhook.id, by=by)
    )
    async with pool.acquire() as conn:
        async with conn.transaction():
            if await conn.fetchval(QUERIES["webhook_lock"], webhook.id) is None:
                return  # deleted meanwhile
            await _record(conn, webhook.id, event, metadata)
            await conn.execute(QUERIES["webhook_set_state"], webhook.id, state)
        await notify_appended(conn, [webhook_stream(webhook.id)])
