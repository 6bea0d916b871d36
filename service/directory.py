"""Users and API keys: add users, issue and revoke `sftq_` keys, authenticate a bearer key.

Keys are `sftq_` + 32 random bytes in base64url; only their SHA-256 is recorded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import msgspec

from events.domain.directory import (
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
from service.commands import run_user_command
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


def _now() -> datetime:
    return datetime.now(UTC)


async def add_user(pool: asyncpg.Pool, email: str, role: Role, metadata: dict[str, Any]) -> User:
    state, _ = await run_user_command(
        pool, email, AddUser(at=_now(), user_id=str(uuid.uuid4()), email=email, role=role), metadata
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
    command = SetUserCap(at=_now(), cap=cap, size_class=size_class, unlimited=unlimited)
    await run_user_command(pool, email, command, metadata)


async def set_share(
    pool: asyncpg.Pool, email: str, share: float | None, metadata: dict[str, Any]
) -> None:
    await run_user_command(pool, email, SetUserShare(at=_now(), share=share), metadata)


async def set_max_priority(
    pool: asyncpg.Pool, email: str, max_priority: int | None, metadata: dict[str, Any]
) -> None:
    command = SetUserMaxPriority(at=_now(), max_priority=max_priority)
    await run_user_command(pool, email, command, metadata)


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
    state, _ = await run_user_command(
        pool,
        email,
        IssueKey(at=_now(), key_id=key_id, key_hash=hash_key(key), label=label),
        metadata,
    )
    assert state.user_id is not None
    return IssuedKey(id=key_id, user_id=state.user_id, key=key)


async def revoke_key(pool: asyncpg.Pool, key_id: str, metadata: dict[str, Any]) -> None:
    email = await pool.fetchval(QUERIES["key_owner_email"], key_id)
    if email is None:
        raise UnknownStream("no such key")
    await run_user_command(pool, email, RevokeKey(at=_now(), key_id=key_id), metadata)


def _active_user(row: asyncpg.Record | None, digest: str) -> User | None:
    if row is None or not hmac.compare_digest(row[4], digest):
        return None
    return User(row[0], row[1], row[2], row[3])


async def authenticate(pool: asyncpg.Pool, key: str) -> User | None:
    """The active user owning `key`, or None (malformed, unknown or revoked)."""
    if not looks_like_key(key):
        return None
    digest = hash_key(key)
    return _active_user(await pool.fetchrow(QUERIES["active_key"], digest), digest)


class KeyLookup:
    """`authenticate` for a server's many concurrent requests: lookups that arrive together
    share one query (service.batcher). Nothing is cached: each lookup's query starts after
    the lookup was asked for, so a key revoked before that is refused."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._batcher: Batcher[str, User | None] = Batcher(self._lookup, name="ftq-key-lookup")

    async def authenticate(self, key: str) -> User | None:
        if not looks_like_key(key):
            return None
        return await self._batcher.call(hash_key(key))

    async def close(self) -> None:
        await self._batcher.close()

    async def _lookup(self, digests: Sequence[str]) -> list[User | None]:
        rows = await self._pool.fetch(QUERIES["active_keys"], sorted(set(digests)))
        by_digest = {row[4]: row for row in rows}
        return [_active_user(by_digest.get(digest), digest) for digest in digests]
