"""Load an aggregate from its stream, and record new events together with the projection
rows they change, in one transaction, then wake the log's tailers: through the process's
`Waker` when given one (coalesced, sent in the background), else by a NOTIFY on the same
connection right after the commit.

These are the only functions that append to the log, so every event ever appended has its
projection written in the same transaction (DESIGN.md "Shape")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

from events import codec, store
from events.directory import (
    SchedulerState,
    UserState,
    evolve_scheduler,
    evolve_user,
)
from events.directory_events import SCHEDULER_STREAM, SchedulerEvent, UserEvent, user_stream
from events.job import JobState, evolve, initial_state
from events.job_events import JobEvent
from events.sql import QUERIES as EVENT_QUERIES
from events.store import Connection, RecordedEvent
from events.waker import Waker
from projections.sql import QUERIES
from projections.writers import job_columns, write_directory, write_job

S = TypeVar("S")
E = TypeVar("E", bound=codec.AnyEvent)


def to_new_events(events: Sequence[codec.AnyEvent]) -> list[store.NewEvent]:
    out = []
    for event in events:
        type_ = codec.event_type(event)
        out.append(store.NewEvent(type_, codec.encode(event), codec.schema_version(type_)))
    return out


async def _load(conn: Connection, stream_id: str, state: S, evolve_fn: Callable[[S, Any], S]) -> S:
    for row in await store.read_stream(conn, stream_id):
        state = evolve_fn(state, codec.decode(row.type, row.schema_version, row.data))
    return state


async def load_job(conn: Connection, job_id: str) -> JobState:
    return await _load(conn, job_id, initial_state(), evolve)


async def load_user(conn: Connection, email: str) -> UserState:
    return await _load(conn, user_stream(email), UserState(), evolve_user)


async def load_scheduler(conn: Connection) -> SchedulerState:
    return await _load(conn, SCHEDULER_STREAM, SchedulerState(), evolve_scheduler)


async def _record(
    conn: Connection,
    stream_id: str,
    version: int,
    events: Sequence[E],
    metadata: Mapping[str, Any],
    project: Callable[[list[RecordedEvent]], Awaitable[None]],
    waker: Waker | None,
) -> list[RecordedEvent]:
    if not events:
        return []
    async with conn.transaction():
        recorded = await store.append(conn, stream_id, version, to_new_events(events), metadata)
        await project(recorded)
    await _wake(conn, waker, stream_id)
    return recorded


async def _wake(conn: Connection, waker: Waker | None, stream_id: str) -> None:
    if waker is None:
        await store.notify_appended(conn, [stream_id])
    else:
        waker.wake([stream_id])


def _embedded(sql: str) -> str:
    return sql.rstrip().removesuffix(";")


# A new job's first event and its row in one statement: atomic without BEGIN/COMMIT, so a
# submit costs one round trip instead of four (the hottest write path).
NEW_JOB: Final = (
    f"WITH appended AS (\n{_embedded(EVENT_QUERIES['append_new_stream'])}\n),\n"
    f"job AS (\n{_embedded(QUERIES['insert_new_job'])}\n)\n"
    "SELECT position, transaction_id, recorded_at FROM appended"
)


async def _record_new_job(
    conn: Connection, after: JobState, event: JobEvent, metadata: Mapping[str, Any]
) -> list[RecordedEvent]:
    """Record the first event of a job that is not in PROGRESS (no user load moves)."""
    prepared = store.prepare(to_new_events([event]), metadata)
    args = store.new_stream_args(after.job_id, prepared)
    columns = job_columns(after)
    with store.append_errors(after.job_id, 0):
        rows = await conn.fetch(NEW_JOB, *args, *columns[1:])
    return store.recorded(after.job_id, 0, prepared, rows)


async def record_job(
    conn: Connection,
    before: JobState,
    events: Sequence[JobEvent],
    metadata: Mapping[str, Any],
    waker: Waker | None = None,
) -> tuple[JobState, list[RecordedEvent]]:
    """Append job events (expecting `before.version`) and write the job's row and load."""
    after = before
    for event in events:
        after = evolve(after, event)

    if before.version == 0 and len(events) == 1 and after.status != "PROGRESS":
        recorded = await _record_new_job(conn, after, events[0], metadata)
        await _wake(conn, waker, after.job_id)
        return after, recorded

    async def project(recorded: list[RecordedEvent]) -> None:
        await write_job(conn, before, after, recorded[-1].position)

    recorded = await _record(conn, after.job_id, before.version, events, metadata, project, waker)
    return after, recorded


async def record_user(
    conn: Connection,
    before: UserState,
    events: Sequence[UserEvent],
    metadata: Mapping[str, Any],
    waker: Waker | None = None,
) -> tuple[UserState, list[RecordedEvent]]:
    after = before
    for event in events:
        after = evolve_user(after, event)

    async def project(_: list[RecordedEvent]) -> None:
        for event in events:
            await write_directory(conn, event)

    recorded = await _record(
        conn, user_stream(after.email), before.version, events, metadata, project, waker
    )
    return after, recorded


async def record_scheduler(
    conn: Connection,
    before: SchedulerState,
    events: Sequence[SchedulerEvent],
    metadata: Mapping[str, Any],
    waker: Waker | None = None,
) -> tuple[SchedulerState, list[RecordedEvent]]:
    after = before
    for event in events:
        after = evolve_scheduler(after, event)

    async def project(_: list[RecordedEvent]) -> None:
        for event in events:
            await write_directory(conn, event)

    recorded = await _record(
        conn, SCHEDULER_STREAM, before.version, events, metadata, project, waker
    )
    return after, recorded
