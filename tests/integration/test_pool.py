"""ftq's pool releases a connection without asyncpg's reset query (one round trip less per
request), and still hands out connections with no open transaction."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.database import create_pool


async def test_a_released_connection_comes_back_clean(db_url: str) -> None:
    pool = await create_pool(db_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("CREATE TEMP TABLE leftover (n int)")
            await conn.execute("INSERT INTO leftover VALUES (1)")
        with pytest.raises(asyncpg.UndefinedTableError):  # rolled back on release
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT pg_backend_pid()") == backend  # same session
                assert not conn.is_in_transaction()
                await conn.fetchval("SELECT count(*) FROM leftover")
    finally:
        await asyncio.wait_for(pool.close(), 10)


async def test_release_sends_no_reset_query(db_url: str) -> None:
    pool = await create_pool(db_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'ftq-pool-test'")
        async with pool.acquire() as conn:
            # asyncpg's default reset would have run RESET ALL; ftq's pool keeps the session
            assert await conn.fetchval("SHOW application_name") == "ftq-pool-test"
    finally:
        await pool.close()
