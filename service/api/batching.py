"""Share one run of an expensive read among concurrent callers without serving stale data.

`await shared.get()` returns the result of a run that *started after the call*, so a caller
that has just committed a job sees it. Callers arriving while a run is under way wait for
the next run and share it: under load at most one run is in flight and one is pending."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SharedRun(Generic[T]):
    def __init__(self, compute: Callable[[], Awaitable[T]]) -> None:
        self._compute = compute
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[T] | None = None
        self._running: asyncio.Future[T] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        """Whether a run is under way or about to start."""
        return self._running is not None or self._pending is not None

    def start(self) -> asyncio.Future[T]:
        """Make sure a run that starts after this call is scheduled; its future."""
        if self._pending is None:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            self._pending = future
            task = asyncio.create_task(self._run(future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._pending

    async def get(self) -> T:
        return await asyncio.shield(self.start())

    async def get_any(self) -> T:
        """The result of the run under way if there is one (it may have started before this
        call), else of a new run: for callers that accept a result a little older."""
        if self._running is not None:
            return await asyncio.shield(self._running)
        return await self.get()

    async def _run(self, future: asyncio.Future[T]) -> None:
        async with self._lock:
            if self._pending is future:
                self._pending = None  # from here on, new callers need a later run
            self._running = future
            try:
                result = await self._compute()
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                self._running = None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # mark as retrieved: every waiter may have gone away
