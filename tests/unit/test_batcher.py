"""service.batcher: calls that arrive together share a batch, a call never joins a batch
already under way, each caller gets its own answer, and no caller is left waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from service.batcher import Batcher


class Recorder:
    """A `run` that records its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def __call__(self, items: Sequence[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(items))
        self.started.set()
        await self.release.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_calls_that_arrive_together_share_one_batch() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run, name="test")
    results = await asyncio.gather(*(batcher.call(i) for i in (0, 2, 4)))
    assert results == [0, 20, 40]
    assert run.batches == [[0, 2, 4]]
    assert (batcher.batches, batcher.items) == (1, 3)


async def test_a_call_made_during_a_batch_goes_into_the_next_one() -> None:
    run = Recorder()
    run.release.clear()
    batcher: Batcher[int, int] = Batcher(run, name="test")
    first = asyncio.create_task(batcher.call(0))
    await run.started.wait()
    later = [asyncio.create_task(batcher.call(i)) for i in (2, 4)]
    await asyncio.sleep(0.01)
    assert run.batches == [[0]]  # the batch under way did not take them
    run.release.set()
    assert await first == 0
    assert [await t for t in later] == [20, 40]
    assert run.batches == [[0], [2, 4]]


async def test_each_caller_gets_its_own_answer_or_exception() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder(), name="test")
    results = await asyncio.gather(*(batcher.call(i) for i in range(4)), return_exceptions=True)
    assert results[0] == 0 and results[2] == 20
    assert isinstance(results[1], ValueError) and str(results[1]) == "odd 1"
    assert isinstance(results[3], ValueError) and str(results[3]) == "odd 3"


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    calls = 0

    async def flaky(items: Sequence[int]) -> Sequence[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database gone")
        return list(items)

    batcher: Batcher[int, int] = Batcher(flaky, name="test")
    results = await asyncio.gather(batcher.call(1), batcher.call(2), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await batcher.call(3) == 3


async def test_a_wrong_number_of_answers_is_an_error_not_a_mix_up() -> None:
    async def short(items: Sequence[int]) -> Sequence[int | BaseException]:
        return list(items)[:-1]

    batcher: Batcher[int, int] = Batcher(short, name="test")
    with pytest.raises(RuntimeError, match="1 answers for 2 items"):
        await asyncio.gather(batcher.call(1), batcher.call(2))


async def test_batches_hold_at_most_max_size_items() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run, name="test", max_size=2)
    assert await asyncio.gather(*(batcher.call(i) for i in (0, 2, 4, 6, 8))) == [0, 20, 40, 60, 80]
    assert run.batches == [[0, 2], [4, 6], [8]]


async def test_a_cancelled_caller_does_not_cancel_the_batch() -> None:
    run = Recorder()
    run.release.clear()
    batcher: Batcher[int, int] = Batcher(run, name="test")
    gone = asyncio.create_task(batcher.call(0))
    stays = asyncio.create_task(batcher.call(2))
    await run.started.wait()
    gone.cancel()
    run.release.set()
    assert await stays == 20
    with pytest.raises(asyncio.CancelledError):
        await gone
    await batcher.close()
    assert batcher.items == 2  # the cancelled caller's item was still run


async def test_shutdown_cancels_the_waiting_callers_instead_of_leaving_them() -> None:
    run = Recorder()
    run.release.clear()
    batcher: Batcher[int, int] = Batcher(run, name="test")
    callers = [asyncio.create_task(batcher.call(i)) for i in (0, 2)]
    await run.started.wait()
    queued = asyncio.create_task(batcher.call(4))
    await asyncio.sleep(0)
    drain = next(t for t in asyncio.all_tasks() if t.get_name() == "test")
    drain.cancel()
    results = await asyncio.gather(*callers, queued, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    await batcher.close()  # returns: nothing is left running


def test_max_size_must_be_positive() -> None:
    async def run(items: Sequence[int]) -> Sequence[int | BaseException]:
        return list(items)

    with pytest.raises(ValueError, match="at least 1"):
        Batcher(run, name="test", max_size=0)
