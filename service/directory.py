"""Users and API keys: add users, issue and revoke `sftq_` keys, authenticate a bearer key.

Keys are `sftq_` + 32 random bytes in base64url; only their SHA-256 is recorded."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg
import msgspec

from events.domain.directory import (
    USER,
    AddUser,
    IssueKey,
    RevokeKey,
    SetUserCap,
    SetUserMaxPriority,
    SetUserShare,
)
from events.domain.directory_events import Role
from events.domain.rejections import UnknownStream
from service.batcher import Batcher
from service.clock import utcnow
from service.commands import run_command
from service.sql import QUERIES

KEY_PREFIX = "sftq_"


class User(msgspec.Struct, frozen=True):
    id: str
    email: str
    role: Role
    cap: int | None = None  # small-class cap (the one cap when classes are off)
    cap_big: int | None = None
    no_cap: tuple[str, ...] = ()  # classes in which the user has no hard cap
    share: float | None = None
    max_priority: int | None = None

    def cap_text(self, size_class: str = "small") -> str:
        """As `ftq users list` shows it: blank for the default, `none` for no cap."""
        if size_class in self.no_cap:
            return "none"
        cap = self.cap_big if size_class == "big" else self.cap
        return "" if cap is None else str(cap)


def _user_of(row: Any) -> User:
    return User(row[0], row[1], row[2], row[3], row[4], tuple(row[5] or ()), row[6], row[7])


class IssuedKey(msgspec.Struct, frozen=True):
    id: str
    user_id: str
    key: str  # the plaintext: shown once, never stored


def new_key() -> str:
    token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return KEY_PREFIX + token


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(key: str) -> bool:
    token = key.removeprefix(KEY_PREFIX)
    return (
        key.startswith(KEY_PREFIX)
        and len(token) == 43
        and token.replace("-", "").replace("_", "").isalnum()
    )


async def add_user(pool: asyncpg.Pool, email: str, role: Role, metadata: dict[str, Any]) -> User:
    state, _ = await run_command(
        pool,
        USER,
        email,
        AddUser(at=utcnow(), user_id=str(uuid.uuid4()), email=email, role=role),
        metadata,
    )
    assert state.user_id is not None
    return User(id=state.user_id, email=state.email, role=state.role)


async def set_cap(
    pool: asyncpg.Pool,
    email: str,
    cap: int | None,
    metadata: dict[str, Any],
    *,
    size_class: Literal["small", "big"] = "small",
    unlimited: bool = False,
) -> None:
    """A per-user cap of one size class; None: the default, unless `unlimited` (no cap)."""
    command = SetUserCap(at=utcnow(), cap=cap, size_class=size_class, unlimited=unlimited)
    await run_command(pool, USER, email, command, metadata)


async def set_share(
    pool: asyncpg.Pool, email: str, share: float | None, metadata: dict[str, Any]
) -> None:
    await run_command(pool, USER, email, SetUserShare(at=utcnow(), share=share), metadata)


async def set_max_priority(
    pool: asyncpg.Pool, email: str, max_priority: int | None, metadata: dict[str, Any]
) -> None:
    command = SetUserMaxPriority(at=utcnow(), max_priority=max_priority)
    await run_command(pool, USER, email, command, metadata)


async def find_user(
    pool: asyncpg.Pool, *, user_id: str | None = None, email: str | None = None
) -> User | None:
    if user_id is not None:
        row = await pool.fetchrow(QUERIES["user_by_id"], user_id)
    else:
        row = await pool.fetchrow(QUERIES["user_by_email"], email)
    return None if row is None else _user_of(row)


async def list_users(pool: asyncpg.Pool) -> list[User]:
    rows = await pool.fetch(QUERIES["users"])
    return [_user_of(r) for r in rows]


async def issue_key(
    pool: asyncpg.Pool, email: str, label: str | None, metadata: dict[str, Any]
) -> IssuedKey:
    key = new_key()
    key_id = str(uuid.uuid4())
    state, _ = await run_command(
        pool,
        USER,
        email,
        IssueKey(at=utcnow(), key_id=key_id, key_hash=hash_key(key), label=label),
        metadata,
    )
    assert state.user_id is not None
    return IssuedKey(id=key_id, user_id=state.user_id, key=key)


async def revoke_key(pool: asyncpg.Pool, key_id: str, metadata: dict[str, Any]) -> None:
    email = await pool.fetchval(QUERIES["key_owner_email"], key_id)
    if email is None:
        raise UnknownStream("no such key")
    await run_command(pool, USER, email, RevokeKey(at=utcnow(), key_id=key_id), metadata)


def _active_user(row: asyncpg.Record | None, digest: str) -> User | None:
    if row is None or not hmac.compare_digest(row[4], digest):
        return None
    return User(row[0], row[1], row[2], row[3])


KEYS_CHANNEL = "ftq_keys"  # projections/sql/migrations/0007_key_change_notify.sql
FORGET_ALL = "*"


class KeyLookup:
    """`authenticate` for a server's many concurrent requests: lookups that arrive together
    share one query (service.batcher); each lookup's query starts after the lookup was asked
    for, so a key revoked before that is refused.

    With a `dsn`, found keys are also kept in memory, so a known key costs no round trip.
    That is safe because every change to a key or its user is announced, in the changing
    transaction, on `KEYS_CHANNEL` (a trigger, migration 0007), and this lookup LISTENs on
    its own connection: a revoked key is forgotten as its revocation commits, in every
    process. A lookup whose query may predate an announcement (one arrived while it ran) is
    not kept. While the LISTEN connection is down nothing is kept and nothing is served from
    memory (every key goes to the database) until it is back. Unknown keys are never kept."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str | None = None,
        *,
        max_cached: int = 10_000,
        reconnect_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._max_cached = max_cached
        self._reconnect_s = reconnect_s
        self._batcher: Batcher[str, User | None] = Batcher(self._lookup, name="ftq-key-lookup")
        self._cache: dict[str, User] = {}
        self._generation = 0  # bumped by every announcement and every (re)connection
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()

    @property
    def lookups(self) -> int:
        """Keys looked up in the database so far (not those served from memory)."""
        return self._batcher.items

    @property
    def caching(self) -> bool:
        """Whether keys are served from memory now (the LISTEN connection is up)."""
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """LISTEN for key changes (a no-op without `dsn`); raises if the first connect fails."""
        if self._dsn is None:
            return
        lost = await self._listen()
        self._task = asyncio.create_task(self._relisten(lost), name="ftq-key-listener")

    async def authenticate(self, key: str) -> User | None:
        if not looks_like_key(key):
            return None
        digest = hash_key(key)
        if self._conn is not None and (user := self._cache.get(digest)) is not None:
            return user
        generation = self._generation
        user = await self._batcher.call(digest)
        if user is not None and generation == self._generation and self.caching:
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
            self._cache[digest] = user
        return user

    async def synced(self) -> None:
        """Return once every announcement committed before this call has been applied here:
        one round trip on the LISTEN connection (PostgreSQL sends a listener the
        notifications it has before a query's ReadyForQuery). For a revocation's answer and
        for tests, never a request's path."""
        conn = self._conn
        if conn is None:
            return  # nothing is served from memory while not listening
        async with self._sync_lock:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.execute("SELECT 1")

    def forget(self, digest: str = FORGET_ALL) -> None:
        """Drop `digest` (every key: `FORGET_ALL`) from memory; lookups under way keep none."""
        self._generation += 1
        if digest == FORGET_ALL:
            self._cache.clear()
        else:
            self._cache.pop(digest, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        self.forget()
        await self._batcher.close()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.forget(str(payload))

    async def _listen(self) -> asyncio.Event:
        assert self._dsn is not None
        conn = await asyncpg.connect(self._dsn)
        lost = asyncio.Event()

        def on_lost(_conn: object) -> None:
            self._conn = None  # stop serving from memory at once
            self.forget()
            lost.set()

        conn.add_termination_listener(on_lost)
        await conn.add_listener(KEYS_CHANNEL, self._on_notify)
        self.forget()  # a lookup that began before the LISTEN may have missed an announcement
        self._conn = conn
        return lost

    async def _relisten(self, lost: asyncio.Event) -> None:
        while True:
            await lost.wait()
            while self._conn is None:
                await asyncio.sleep(self._reconnect_s)
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    lost = await self._listen()

    async def _lookup(self, digests: Sequence[str]) -> list[User | None]:
        rows = await self._pool.fetch(QUERIES["active_keys"], sorted(set(digests)))
        by_digest = {row[4]: row for row in rows}
        return [_active_user(by_digest.get(digest), digest) for digest in digests]
