"""Coalesced wake-ups for the log's tailers: one ``Waker`` per process serves every writer.

A writer calls ``waker.wake([stream_id])`` right after its commit; the call returns at once.
At most one NOTIFY statement is in flight, and consecutive ones are at least
``min_interval_s`` apart: stream ids that arrive meanwhile go out together in the next one.
At low load a wake-up leaves at once (one round trip after the commit); under load there are
at most ``1 / min_interval_s`` NOTIFY transactions a second instead of one per append, which
is what made per-append NOTIFY the main cost of an append (PostgreSQL takes a cluster-wide
lock to queue notifications at commit; ``bench/event_store.py`` measures it). The price is
at most ``min_interval_s`` of extra wake-up latency, only under load.

A wake-up that cannot be sent (the database is unreachable) is dropped: tailers read the log,
not the notifications, and find the events on their fallback timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterable

import asyncpg

from events.store.log import notify_appended

OnError = Callable[[BaseException], None]


def _ignore(_: BaseException) -> None:
    """The default `on_error`: a dropped wake-up needs no action (see the module docstring)."""


class Waker:
    """The process's wake-ups, coalesced (see the module docstring); `on_error` hears of
    each one that could not be sent."""

    def __init__(
        self, pool: asyncpg.Pool, *, min_interval_s: float = 0.005, on_error: OnError = _ignore
    ) -> None:
        self._pool = pool
        self._min_interval_s = min_interval_s
        self._on_error = on_error
        self._last_sent = -math.inf
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # NOTIFY statements sent, for tests and benchmarks

    def wake(self, stream_ids: Iterable[str]) -> None:
        """Queue a wake-up for these streams; sent as soon as no other NOTIFY is in flight."""
        self._pending.update(stream_ids)
        if self._pending and self._task is None:
            self._task = asyncio.create_task(self._send_pending(), name="ftq-waker")

    async def flush(self) -> None:
        """Return once every wake-up queued before the call has been sent (or dropped)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Send what is queued, then stop."""
        with contextlib.suppress(Exception):
            await self.flush()

    async def _send_pending(self) -> None:
        try:
            while self._pending:
                loop = asyncio.get_running_loop()
                await asyncio.sleep(self._last_sent + self._min_interval_s - loop.time())
                self._last_sent = loop.time()
                ids, self._pending = self._pending, set()
                try:
                    async with self._pool.acquire() as conn:
                        await notify_appended(conn, ids)
                    self.sent += 1
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    self._on_error(exc)
        finally:
            self._task = None
