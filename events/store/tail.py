"""Following the log: ``LogTail``/``tail`` read new events as they commit, woken by NOTIFY;
``LogWatcher`` shares one LISTEN connection among many consumers in a process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg

from events.store.log import (
    CHANNEL,
    Connection,
    Cursor,
    RecordedEvent,
    committed_after,
    read_all,
    woken_streams,
)

T = TypeVar("T")
_RETRY_MIN_S = 0.02  # first re-read when committed events are held back by an open transaction


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


class Subscription:
    """A consumer's wake-up flag, set on every NOTIFY (of its streams, when given)."""

    def __init__(self, watcher: LogWatcher, stream_ids: Collection[str] | None) -> None:
        self.event = asyncio.Event()
        self.stream_ids = None if stream_ids is None else frozenset(stream_ids)
        self._watcher = watcher

    async def wait(self, seconds: float) -> None:
        """Wait for a wake-up or ``seconds``, then clear the flag."""
        await _wait(self.event, seconds)
        self.event.clear()

    def close(self) -> None:
        self._watcher._subscriptions.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LogWatcher:
    """One LISTEN connection per process, fanned out to many subscribers' ``asyncio.Event``s.

    When the connection drops it reconnects every ``reconnect_s`` and then wakes everyone,
    since notifications sent meanwhile are lost.
    """

    def __init__(self, dsn: str, *, channel: str = CHANNEL, reconnect_s: float = 1.0) -> None:
        self._dsn = dsn
        self._channel = channel
        self._reconnect_s = reconnect_s
        self._subscriptions: set[Subscription] = set()
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        """Subscriptions open now (a consumer that went away must have closed its own)."""
        return len(self._subscriptions)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def subscribe(self, stream_ids: Collection[str] | None = None) -> Subscription:
        sub = Subscription(self, stream_ids)
        self._subscriptions.add(sub)
        return sub

    def wake_all(self) -> None:
        for sub in self._subscriptions:
            sub.event.set()

    async def start(self) -> None:
        """Connect and listen; raises if the first connection fails."""
        await self._connect()
        self._task = asyncio.create_task(self._reconnect_forever(), name="ftq-log-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        woken = woken_streams(str(payload))
        for sub in self._subscriptions:
            if sub.stream_ids is None or not sub.stream_ids.isdisjoint(woken):
                sub.event.set()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        self._lost = lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(self._channel, self._on_notify)
        self._conn = conn
        self.wake_all()

    async def _reconnect_forever(self) -> None:
        while True:
            await self._lost.wait()
            self._conn = None
            self.wake_all()
            while self._conn is None:
                await asyncio.sleep(self._reconnect_s)
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    await self._connect()


class LogTail:
    """Reads the log after a cursor, batch by batch, sleeping only while nothing is readable.

    ``source`` is a DSN (one dedicated connection) or a pool. Without a ``watcher`` it LISTENs
    on a dedicated connection; with one, reads from a pool borrow a connection per read. It
    wakes on NOTIFY and every ``fallback_poll_s``; when committed events are held back by an
    older open transaction it re-reads after 20 ms, doubling up to ``fallback_poll_s``.
    """

    def __init__(
        self,
        source: str | asyncpg.Pool,
        after: Cursor = Cursor.START,
        *,
        batch: int = 500,
        fallback_poll_s: float = 2.0,
        watcher: LogWatcher | None = None,
    ) -> None:
        self.cursor = after
        self._source = source
        self._batch = batch
        self._fallback_s = fallback_poll_s
        self._watcher = watcher
        self._wake = asyncio.Event()
        self._conn: Connection | None = None
        self._exit = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        stack = self._exit
        try:
            if isinstance(self._source, str):
                conn = await asyncpg.connect(self._source)
                stack.push_async_callback(conn.close)
                self._conn = conn
            elif self._watcher is None:
                self._conn = await stack.enter_async_context(self._source.acquire())
            if self._watcher is not None:
                self._wake = stack.enter_context(self._watcher.subscribe()).event
            else:
                assert self._conn is not None
                await self._conn.add_listener(CHANNEL, self._on_notify)
                stack.push_async_callback(self._conn.remove_listener, CHANNEL, self._on_notify)
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[RecordedEvent]:
        """The next non-empty batch, in (transaction_id, position) order."""
        retry_s = _RETRY_MIN_S
        while True:
            self._wake.clear()
            rows = await self._read(lambda c: read_all(c, self.cursor, self._batch))
            if rows:
                self.cursor = rows[-1].cursor
                return rows
            if await self._read(lambda c: committed_after(c, self.cursor)):
                timeout, retry_s = retry_s, min(retry_s * 2, self._fallback_s)
            else:
                timeout, retry_s = self._fallback_s, _RETRY_MIN_S
            await _wait(self._wake, timeout)

    async def _read(self, query: Callable[[Connection], Awaitable[T]]) -> T:
        if self._conn is not None:
            return await query(self._conn)
        assert isinstance(self._source, asyncpg.Pool)
        async with self._source.acquire() as conn:
            return await query(conn)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, _payload: object) -> None:
        self._wake.set()


async def tail(
    source: str | asyncpg.Pool,
    after: Cursor = Cursor.START,
    *,
    batch: int = 500,
    fallback_poll_s: float = 2.0,
    watcher: LogWatcher | None = None,
) -> AsyncIterator[list[RecordedEvent]]:
    """Batches of events after ``after``, forever. Wrap in ``contextlib.aclosing`` so the
    connection is released as soon as the consumer stops."""
    async with LogTail(
        source, after, batch=batch, fallback_poll_s=fallback_poll_s, watcher=watcher
    ) as log:
        async for rows in log:
            yield rows
