"""Leader election: a session-level advisory lock held on a dedicated connection.

The lock lives as long as the connection; losing the connection means losing leadership,
so the leader checks the connection is alive before each tick."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg
import structlog

from events.store import locks
from service.sql import QUERIES

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_S: Final = 2.0
Connect = Callable[[], Awaitable[asyncpg.Connection]]


class Leadership:
    """Try to become leader (`acquire`), check it still holds (`alive`), give it up (`release`)."""

    def __init__(self, connect: Connect, *, key: int = locks.LEADER) -> None:
        self._connect = connect
        self._key = key
        self._conn: asyncpg.Connection | None = None
        self._leader = False

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def acquire(self) -> bool:
        """Take the lock if it is free; True while this process is the leader."""
        if self._leader:
            return await self.alive()
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                got = bool(await self._conn.fetchval(QUERIES["leader_try_lock"], self._key))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("leader.acquire_failed", error=type(exc).__name__)
            await self._drop()
            return False
        if got:
            self._leader = True
            log.info("leader.acquired")
        return got

    async def alive(self) -> bool:
        """Whether the lock's connection still answers; if not, leadership is lost."""
        if not self._leader or self._conn is None or self._conn.is_closed():
            await self._lost()
            return False
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self._conn.fetchval(QUERIES["leader_alive"])
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("leader.connection_lost", error=type(exc).__name__)
            await self._lost()
            return False
        return True

    async def release(self) -> None:
        """Give up leadership by closing the connection (the lock goes with it)."""
        if self._leader:
            log.info("leader.released")
        self._leader = False
        await self._drop()

    async def _lost(self) -> None:
        if self._leader:
            log.warning("leader.lost")
        self._leader = False
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    await conn.close()
            if not conn.is_closed():
                conn.terminate()
