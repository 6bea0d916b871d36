from __future__ import annotations

import asyncio
import contextlib
import json
import random

import asyncpg
import msgspec
import pytest

from events.store.errors import InvalidEventData, StreamVersionConflict, UnknownPosition
from events.store.log import (
    Cursor,
    NewEvent,
    RecordedEvent,
    append,
    cursor_at_position,
    head_cursor,
    notify_appended,
    read_all,
    read_stream,
    woken_streams,
)
from events.store.tail import LogTail, LogWatcher, tail


async def append_and_notify(
    conn: asyncpg.Connection,
    stream_id: str,
    expected_version: int,
    events: list[NewEvent],
    metadata: dict[str, str],
) -> list[RecordedEvent]:
    """Append (committed on its own), then NOTIFY: two round trips."""
    recorded = await append(conn, stream_id, expected_version, events, metadata)
    await notify_appended(conn, [stream_id])
    return recorded


def ev(n: int, type_: str = "test.happened") -> NewEvent:
    return NewEvent(type=type_, data=msgspec.json.encode({"n": n}))


def as_read(events: list[RecordedEvent]) -> list[RecordedEvent]:
    """What reading these appended events back gives: the same JSON values, in jsonb's text
    form (keys reordered, one space after each `:` and `,`)."""
    return [msgspec.structs.replace(e, data=jsonb_text(e.data)) for e in events]


def jsonb_text(data: bytes) -> bytes:
    value = msgspec.json.decode(data)
    return json.dumps(value, separators=(", ", ": "), sort_keys=False).encode()


async def test_append_and_read_back(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = await append(conn, "job-1", 0, [ev(1), ev(2)], {"actor": "alice"})
        more = await append(conn, "job-1", 2, [NewEvent("x", b'{"a": [1],  "b": 2}', 3)], {})
        other = await append(conn, "job-2", 0, [ev(9)], {})
        assert [e.stream_version for e in first + more] == [1, 2, 3]
        assert first[0].metadata == {"actor": "alice"}
        assert msgspec.json.decode(first[1].data) == {"n": 2}
        assert more[0].schema_version == 3
        assert more[0].data == b'{"a": [1],  "b": 2}'  # as given
        first, more, other = as_read(first), as_read(more), as_read(other)
        stream = await read_stream(conn, "job-1")
        assert stream == first + more
        assert stream[2].data == b'{"a": [1], "b": 2}'  # jsonb's normal form
        assert await read_stream(conn, "job-1", after_version=2) == more
        everything = await read_all(conn, Cursor.START, 100)
        assert everything == first + more + other
        assert await read_all(conn, first[1].cursor, 1) == more
        assert await cursor_at_position(conn, more[0].position) == more[0].cursor
        assert await cursor_at_position(conn, 0) == Cursor.START
        with pytest.raises(UnknownPosition):
            await cursor_at_position(conn, 10_000)
        assert await head_cursor(conn) == other[0].cursor
        assert await append(conn, "job-3", 0, [], {}) == []


async def test_wrong_expected_version_conflicts_and_writes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await append(conn, "s", 0, [ev(1)], {})
        # behind the stream: the unique index refuses it (the version found is not known);
        # ahead of it: version 2 does not exist, nothing is inserted and the head is reported
        for expected, actual in ((0, None), (2, 1)):
            with pytest.raises(StreamVersionConflict) as info:
                await append(conn, "s", expected, [ev(2), ev(3)], {})
            assert (info.value.expected, info.value.actual) == (expected, actual)
        assert len(await read_stream(conn, "s")) == 1


async def test_failed_append_inside_a_caller_transaction_leaves_nothing(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE projection (id text PRIMARY KEY)")
        await append(conn, "s", 0, [ev(1)], {})
        with pytest.raises(StreamVersionConflict):
            async with conn.transaction():
                await conn.execute("INSERT INTO projection VALUES ('s')")
                await append(conn, "t", 0, [ev(1)], {})
                await append(conn, "s", 0, [ev(2)], {})
        assert await conn.fetchval("SELECT count(*) FROM projection") == 0
        assert await conn.fetchval("SELECT count(*) FROM events") == 1


async def test_concurrent_appenders_with_the_same_expected_version(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as a, pool.acquire() as b:
        tx_a, tx_b = a.transaction(), b.transaction()
        await tx_a.start()
        await tx_b.start()
        await append(a, "s", 0, [ev(1)], {})
        loser = asyncio.create_task(append(b, "s", 0, [ev(2)], {}))
        await asyncio.sleep(0.1)
        assert not loser.done()  # waits on a's uncommitted row
        await tx_a.commit()
        with pytest.raises(StreamVersionConflict) as info:
            await loser
        assert info.value.actual is None
        await tx_b.rollback()
    results = await asyncio.gather(
        *(_append_own_tx(pool, "race", n) for n in range(8)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, StreamVersionConflict) for r in results if isinstance(r, Exception))
    async with pool.acquire() as conn:
        assert [e.stream_version for e in await read_stream(conn, "race")] == [1]


async def _append_own_tx(pool: asyncpg.Pool, stream: str, n: int) -> None:
    async with pool.acquire() as conn:
        await append_and_notify(conn, stream, 0, [ev(n)], {})


BAD_DATA = [
    b"not json",
    b"[1, 2]",
    b'"text"',
    b"",
    b"  ",
    b'{"a": 1',
    b'{"a": 1} x',
    b'{"a": "\\u0000"}',
    b'{"a": "\xff"}',
    b"{'a': 1}",
]


@pytest.mark.parametrize("data", BAD_DATA)
@pytest.mark.parametrize("alone", [True, False], ids=["alone", "after-a-good-one"])
async def test_invalid_data_refused(pool: asyncpg.Pool, data: bytes, alone: bool) -> None:
    events = [NewEvent("bad", data)] if alone else [ev(1), NewEvent("bad", data)]
    async with pool.acquire() as conn:
        with pytest.raises(InvalidEventData):
            await append(conn, "s", 0, events, {})
        await append(conn, "t", 0, [ev(1)], {})
        with pytest.raises(InvalidEventData):
            await append(conn, "t", 1, events, {})
        assert await conn.fetchval("SELECT count(*) FROM events") == 1


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events SET type = 'changed'",
        "UPDATE events SET data = '{}' WHERE position > 0",
        "DELETE FROM events",
        "TRUNCATE events",
        "TRUNCATE events CASCADE",
    ],
)
async def test_log_refuses_change_even_for_its_owner(pool: asyncpg.Pool, sql: str) -> None:
    async with pool.acquire() as conn:
        await append(conn, "s", 0, [ev(1)], {})
        owner = "SELECT tableowner = current_user FROM pg_tables WHERE tablename = 'events'"
        assert await conn.fetchval(owner)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(sql)
        assert len(await read_stream(conn, "s")) == 1


@pytest.mark.parametrize("version", [0, -1])
async def test_log_refuses_a_stream_version_below_one(pool: asyncpg.Pool, version: int) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="event_stream_version"):
            await conn.execute(
                "INSERT INTO events (stream_id, stream_version, type, data)"
                " VALUES ('s', $1, 't', '{}')",
                version,
            )
        assert await conn.fetchval("SELECT count(*) FROM events") == 0


async def test_append_and_notify_wakes_listeners(pool: asyncpg.Pool, db_url: str) -> None:
    got: asyncio.Queue[object] = asyncio.Queue()
    listener = await asyncpg.connect(db_url)  # its own connection: listeners outlive a borrow
    try:
        await listener.add_listener("ftq_events", lambda *args: got.put_nowait(args[3]))
        async with pool.acquire() as writer:
            await append_and_notify(writer, "job-7", 0, [ev(1)], {})
        assert await asyncio.wait_for(got.get(), 5) == '["job-7"]'
        async with pool.acquire() as writer:
            await notify_appended(writer, ["b", "a", "b"])
        assert woken_streams(str(await asyncio.wait_for(got.get(), 5))) == ["a", "b"]
    finally:
        await listener.close()


# --- gap-free tailing -------------------------------------------------------------------------


async def test_naive_position_reader_skips_what_read_all_does_not(pool: asyncpg.Pool) -> None:
    """An event committed late with a lower position: `position > last` skips it for good."""
    async with pool.acquire() as held, pool.acquire() as other, pool.acquire() as reader:
        tx = held.transaction()
        await tx.start()
        [low] = await append(held, "held", 0, [ev(1)], {})
        [high] = await append(other, "other", 0, [ev(2)], {})  # commits at once
        assert low.position < high.position

        naive = await reader.fetch("SELECT position FROM events WHERE position > 0")
        last_position = max(r[0] for r in naive)
        assert await read_all(reader, Cursor.START, 100) == []  # held back, not skipped

        await tx.commit()
        naive_after = await reader.fetch(
            "SELECT position FROM events WHERE position > $1", last_position
        )
        assert [r[0] for r in naive] + [r[0] for r in naive_after] == [high.position]
        assert [e.position for e in await read_all(reader, Cursor.START, 100)] == [
            low.position,
            high.position,
        ]


async def test_tail_sees_every_committed_event_once_in_order(
    pool: asyncpg.Pool, db_url: str
) -> None:
    writers, appends_per_writer = 6, 25
    seen: list[tuple[int, int]] = []
    committed: set[int] = set()

    async def follow() -> None:
        async with contextlib.aclosing(tail(db_url, Cursor.START, batch=7)) as batches:
            async for rows in batches:
                seen.extend((e.transaction_id, e.position) for e in rows)

    async def writer(w: int) -> None:
        async with pool.acquire() as conn:
            for i in range(appends_per_writer):
                tx = conn.transaction()
                await tx.start()
                recorded = await append(conn, f"w{w}-{i}", 0, [ev(i), ev(i + 1)], {})
                await asyncio.sleep(random.random() * 0.01 * (w % 3))  # some hold it open
                if i % 10 == 9:
                    await tx.rollback()  # aborted appends leave position gaps
                    continue
                await tx.commit()
                committed.update(e.position for e in recorded)
                await notify_appended(conn, [f"w{w}-{i}"])

    follower = asyncio.create_task(follow())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    async with asyncio.timeout(30):
        while not {p for _, p in seen} >= committed:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # room for a duplicate or a stray event to show up
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))
    assert {p for _, p in seen} == committed


async def test_tail_holds_back_until_an_older_transaction_commits(
    pool: asyncpg.Pool, db_url: str
) -> None:
    async with LogWatcher(db_url) as watcher, pool.acquire() as held, pool.acquire() as other:
        tx = held.transaction()
        await tx.start()
        [low] = await append(held, "held", 0, [ev(1)], {})
        high = await append_and_notify(other, "other", 0, [ev(2)], {})
        log = LogTail(pool, Cursor.START, watcher=watcher, fallback_poll_s=0.2)
        async with log:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(log), 0.5)  # neither event, not even `high`
            await tx.commit()
            await notify_appended(held, ["held"])
            batch = await asyncio.wait_for(anext(log), 5)
            if len(batch) == 1:
                batch += await asyncio.wait_for(anext(log), 5)
            assert [e.position for e in batch] == [low.position, high[0].position]


async def test_tail_wakes_on_notify_long_before_the_fallback_timer(
    pool: asyncpg.Pool, db_url: str
) -> None:
    async with LogTail(db_url, fallback_poll_s=60) as log, pool.acquire() as conn:
        reading = asyncio.create_task(anext(log))
        await asyncio.sleep(0.1)
        await append_and_notify(conn, "s", 0, [ev(1)], {})
        assert len(await asyncio.wait_for(reading, 2)) == 1


async def test_watcher_fans_out_to_subscribers_by_stream(db_url: str, pool: asyncpg.Pool) -> None:
    async with LogWatcher(db_url) as watcher, pool.acquire() as conn:
        everything, only_b = watcher.subscribe(), watcher.subscribe(["b"])
        everything.event.clear()
        only_b.event.clear()
        await append_and_notify(conn, "a", 0, [ev(1)], {})
        await asyncio.wait_for(everything.event.wait(), 2)
        await asyncio.sleep(0.05)
        assert not only_b.event.is_set()
        await append_and_notify(conn, "b", 0, [ev(1)], {})
        await asyncio.wait_for(only_b.event.wait(), 2)
        only_b.close()
        await conn.execute(  # the watcher reconnects and wakes everyone
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND query LIKE 'LISTEN%'"
        )
        everything.event.clear()
        await asyncio.wait_for(everything.event.wait(), 5)
        for _ in range(100):
            if watcher.connected:
                break
            await asyncio.sleep(0.05)
        assert watcher.connected
