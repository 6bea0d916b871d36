"""Group calls that arrive together into one database round trip ("group commit").

`await batcher.call(item)` queues the item. One task runs the queue: it takes everything
queued (up to `max_size`) and hands it to `run(items)`, which answers each item with a
result or an exception. Items queued while a batch runs go into the next batch, never into
the one under way, so a call always sees the database as it was *after* the call began
(a key revoked before a lookup is queued is refused by that lookup).

At low load a batch holds one item and leaves at once: nothing waits for company. Under
load the batches grow by themselves, and each round trip, commit and pool checkout is
shared by all of them (`bench/http_api.py` measures what that is worth).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

I = TypeVar("I")  # noqa: E741  (an item)
O = TypeVar("O")  # noqa: E741  (its answer)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an answer nobody awaits any more (its caller was cancelled) as seen."""
    if not future.cancelled():
        future.exception()


class Batcher(Generic[I, O]):
    """Calls grouped into batches (see the module docstring); `run` gets at most `max_size`
    items and returns one answer per item, in order: a result, or the exception to raise."""

    def __init__(
        self,
        run: Callable[[Sequence[I]], Awaitable[Sequence[O | BaseException]]],
        *,
        name: str,
        max_size: int = 256,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._run = run
        self._name = name
        self._max_size = max_size
        self._queue: list[tuple[I, asyncio.Future[O]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches run, for tests and benchmarks
        self.items = 0  # items answered

    async def call(self, item: I) -> O:
        future: asyncio.Future[O] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._queue.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name=self._name)
        # The batch runs whatever happens to this caller: a cancelled caller (a client that
        # hung up) does not cancel the others' round trip, and the result is still recorded.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for every queued item to be answered."""
        while self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_size]
                del self._queue[: self._max_size]
                try:
                    await self._answer(batch)
                except BaseException:  # cancelled (shutdown): no caller may wait forever
                    for _, future in batch + self._queue:
                        future.cancel()
                    self._queue.clear()
                    raise
        finally:
            self._task = None

    async def _answer(self, batch: list[tuple[I, asyncio.Future[O]]]) -> None:
        try:
            answers: Sequence[O | BaseException] = await self._run([item for item, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{self._name}: {len(answers)} answers for {len(batch)} items")
        except Exception as exc:  # the whole batch failed: every caller hears why
            answers = [exc] * len(batch)
        self.batches += 1
        self.items += len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
