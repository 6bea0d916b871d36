"""The process's coalesced wake-ups: every woken stream is notified, under load with far fewer
NOTIFY statements than wake-ups, at once when idle, and a lost database only drops them."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from events.store.log import CHANNEL, append, woken_streams
from events.store.tail import LogWatcher
from events.store.waker import Waker
from tests.integration.test_event_store import ev


class Notified:
    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.arrived = asyncio.Event()

    def __call__(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.payloads.extend(woken_streams(str(payload)))
        self.arrived.set()

    async def until(self, wanted: set[str], within_s: float = 5.0) -> None:
        async with asyncio.timeout(within_s):
            while not wanted <= set(self.payloads):
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def notified(db_url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(db_url)
    listener = Notified()
    await conn.add_listener(CHANNEL, listener)
    try:
        yield listener
    finally:
        await conn.close()


async def test_many_writers_are_all_woken_with_few_notifies(
    pool: asyncpg.Pool, notified: Notified
) -> None:
    waker = Waker(pool, min_interval_s=0.005)
    streams = [f"s-{i}" for i in range(400)]

    async def write(stream_id: str) -> None:
        async with pool.acquire() as conn:
            await append(conn, stream_id, 0, [ev(1)], {})
        waker.wake([stream_id])

    await asyncio.gather(*(write(s) for s in streams))
    await waker.flush()
    await notified.until(set(streams))
    assert sorted(set(notified.payloads)) == sorted(streams)
    assert 1 <= waker.sent < len(streams) / 4, waker.sent


async def test_an_idle_waker_sends_at_once(pool: asyncpg.Pool, notified: Notified) -> None:
    waker = Waker(pool, min_interval_s=10.0)  # the interval only spaces consecutive sends
    started = time.perf_counter()
    waker.wake(["first"])
    await notified.until({"first"}, within_s=1.0)
    assert time.perf_counter() - started < 1.0
    await waker.flush()
    assert waker.sent == 1


async def test_wakes_soon_after_a_send_wait_for_the_interval_and_go_out_together(
    pool: asyncpg.Pool, notified: Notified
) -> None:
    waker = Waker(pool, min_interval_s=0.2)
    waker.wake(["a"])
    await notified.until({"a"})
    woken = time.perf_counter()
    waker.wake(["b", "c"])
    waker.wake(["b"])
    await waker.flush()
    await notified.until({"a", "b", "c"})
    assert time.perf_counter() - woken >= 0.1  # spaced from the first send
    assert waker.sent == 2
    assert sorted(notified.payloads) == ["a", "b", "c"]


async def test_a_log_watcher_subscriber_is_woken_through_the_waker(
    pool: asyncpg.Pool, db_url: str
) -> None:
    async with LogWatcher(db_url) as watcher:
        with watcher.subscribe(["job-7"]) as sub:
            waker = Waker(pool)
            waker.wake(["job-7"])
            async with asyncio.timeout(5):
                await sub.event.wait()


async def test_an_unreachable_database_drops_the_wake_up_and_reports_it(db_url: str) -> None:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    await pool.close()
    errors: list[BaseException] = []
    waker = Waker(pool, on_error=errors.append)
    waker.wake(["lost"])
    await waker.flush()
    assert len(errors) == 1
    assert waker.sent == 0
    waker.wake(["lost-again"])  # it keeps working: the next wake-up is tried again
    await waker.close()
    assert len(errors) == 2
