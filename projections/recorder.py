"""Load an aggregate from its stream, and record new events together with the projection
rows they change, in one transaction, then wake the log's tailers: through the process's
`Waker` when given one (coalesced, sent in the background), else by a NOTIFY on the same
connection right after the commit.

These are the only functions that append to the log, so every event ever appended has its
projection written in the same transaction (DESIGN.md "Shape")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

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
from events.store import Connection, RecordedEvent
from events.waker import Waker
from projections.writers import write_directory, write_job

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
    if waker is None:
        await store.notify_appended(conn, [stream_id])
    else:
        waker.wake([stream_id])
    return recorded


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
