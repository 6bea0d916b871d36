"""A database of the benchmark's own on a server, dropped afterwards even on failure."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import asyncpg

from service.database import migrate, with_database


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(
    server_url: str, *, migrated: bool = True, prefix: str = "ftq_bench_"
) -> AsyncIterator[str]:
    """Create a uniquely named database (migrated unless told not to); yield its URL."""
    name = f"{prefix}{secrets.token_hex(6)}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    try:
        if migrated:
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield url
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
