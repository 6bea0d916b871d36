"""Keys kept in memory by service.directory.KeyLookup, forgotten on the NOTIFY that every
change to a key or its user sends in its own transaction (migration 0007)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.directory import KeyLookup, add_user, issue_key, revoke_key

META = {"actor": "test"}


@pytest.fixture
async def instances(db_url: str) -> AsyncIterator[list[KeyLookup]]:
    """Two servers' key lookups: each its own pool and its own LISTEN connection."""
    pools = [await asyncpg.create_pool(db_url, min_size=1, max_size=2) for _ in range(2)]
    lookups = [KeyLookup(p, db_url, reconnect_s=0.05) for p in pools]
    for keys in lookups:
        await keys.start()
    yield lookups
    for keys in lookups:
        await keys.close()
    for p in pools:
        await p.close()


async def test_a_revoked_key_is_forgotten_by_every_instance(
    pool: asyncpg.Pool, instances: list[KeyLookup]
) -> None:
    await add_user(pool, "ada@example.com", "member", META)
    await add_user(pool, "bob@example.com", "member", META)
    ada = await issue_key(pool, "ada@example.com", None, META)
    bob = await issue_key(pool, "bob@example.com", None, META)
    for keys in instances:
        assert keys.caching
        for key in (ada.key, bob.key):
            found = await keys.authenticate(key)
            assert found is not None
        asked = keys.lookups
        assert (await keys.authenticate(ada.key)) is not None
        assert keys.lookups == asked  # served from memory: no query
    await revoke_key(pool, ada.id, META)  # a third process's revocation, like `ftq keys revoke`
    for keys in instances:
        await keys.synced()  # the NOTIFY has arrived (no sleep, no polling)
        asked = keys.lookups
        assert await keys.authenticate(ada.key) is None
        assert keys.lookups == asked + 1  # forgotten: asked the database, which refused it
        assert await keys.authenticate(bob.key) is not None
        assert keys.lookups == asked + 1  # bob's key is still in memory


async def test_nothing_is_served_from_memory_while_not_listening(
    pool: asyncpg.Pool, instances: list[KeyLookup]
) -> None:
    """The LISTEN connection drops: every key goes to the database (a revocation then
    unheard is still refused) until it is back, and caching resumes."""
    await add_user(pool, "ada@example.com", "member", META)
    ada = await issue_key(pool, "ada@example.com", None, META)
    keys = instances[0]
    assert await keys.authenticate(ada.key) is not None
    listener_pid = keys._conn.get_server_pid() if keys._conn else None
    assert listener_pid is not None
    await pool.execute("SELECT pg_terminate_backend($1)", listener_pid)
    async with asyncio.timeout(5):
        while keys.caching:
            await asyncio.sleep(0.01)
    await revoke_key(pool, ada.id, META)
    assert await keys.authenticate(ada.key) is None
    other = await issue_key(pool, "ada@example.com", None, META)
    async with asyncio.timeout(5):
        while not keys.caching:
            await asyncio.sleep(0.01)
    assert await keys.authenticate(other.key) is not None
    asked = keys.lookups
    assert await keys.authenticate(other.key) is not None
    assert keys.lookups == asked  # from memory again
