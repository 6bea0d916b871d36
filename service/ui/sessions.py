"""Dashboard sessions: a random cookie token whose SHA-256 is stored in `ui_sessions`, tied to
the API key that signed in. A lookup joins the key and its user, so a revoked key (or an
expired row) is no session. Each session has its own CSRF token for the forms."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Final

import asyncpg
import msgspec

from service.directory import hash_key, looks_like_key

COOKIE: Final = "ftq_session"
LIFETIME: Final = timedelta(hours=12)

_KEY_ID: Final = "SELECT id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
_CREATE: Final = """
INSERT INTO ui_sessions (token_hash, key_id, csrf_token, expires_at)
VALUES ($1, $2, $3, now() + $4::interval)
"""
_LOOKUP: Final = """
SELECT u.id::text, u.email, u.role, s.csrf_token
FROM ui_sessions s
JOIN api_keys k ON k.id = s.key_id AND k.revoked_at IS NULL
JOIN users u ON u.id = k.user_id
WHERE s.token_hash = $1 AND s.expires_at > now()
"""
_DELETE: Final = "DELETE FROM ui_sessions WHERE token_hash = $1 OR expires_at <= now()"


class Session(msgspec.Struct, frozen=True):
    user_id: str
    email: str
    role: str
    csrf: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def sign_in(pool: asyncpg.Pool, key: str) -> str | None:
    """A new session's cookie token for an active `key`; None for a bad or revoked key."""
    if not looks_like_key(key):
        return None
    key_id = await pool.fetchval(_KEY_ID, hash_key(key))
    if key_id is None:
        return None
    token = secrets.token_urlsafe(32)
    await pool.execute(_CREATE, _digest(token), key_id, secrets.token_urlsafe(32), LIFETIME)
    return token


async def lookup(pool: asyncpg.Pool, token: str | None) -> Session | None:
    """The live session of a cookie token (None: absent, unknown, expired or key revoked)."""
    if not token or len(token) > 100:
        return None
    row = await pool.fetchrow(_LOOKUP, _digest(token))
    return None if row is None else Session(row[0], row[1], row[2], row[3])


async def sign_out(pool: asyncpg.Pool, token: str | None) -> None:
    """End the session (and sweep expired ones)."""
    if token and len(token) <= 100:
        await pool.execute(_DELETE, _digest(token))
