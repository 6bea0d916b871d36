"""Load an aggregate from its stream, and record new events together with the projection
rows they change, in one transaction, then wake the log's tailers: through the process's
`Waker` when given one (coalesced, sent in the background), else by a NOTIFY on the same
connection right after the commit.

These are the only functions that append to the log, so every event ever appended has its
projection written in the same transaction (DESIGN.md "Shape")."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import msgspec

from events.domain import codec
from events.domain.directory import (
    SchedulerState,
    UserState,
    evolve_scheduler,
    evolve_user,
)
from events.domain.directory_events import (
    SCHEDULER_STREAM,
    SchedulerEvent,
    UserCapSet,
    UserEvent,
    UserShareSet,
    user_stream,
)
from events.domain.job import JobState, evolve, initial_state
from events.domain.job_events import JobEvent
from events.domain.operations import operations_of
from events.store import locks
from events.store import log as store
from events.store.log import Connection, RecordedEvent
from events.store.sql import QUERIES as EVENT_QUERIES
from events.store.waker import Waker
from projections.sql import DEPENDENCIES, QUERIES
from projections.writers import (
    dependency_rows,
    job_columns,
    scheduling_columns,
    write_directory,
    write_job,
    write_operations,
    write_scheduling,
)

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
    *,
    gate: bool = False,
) -> list[RecordedEvent]:
    if not events:
        return []
    async with conn.transaction():
        if gate:  # first: see the query's comment
            await conn.execute(QUERIES["admission_gate_shared"], locks.ADMISSION_GATE)
        recorded = await store.append(conn, stream_id, version, to_new_events(events), metadata)
        await project(recorded)
    await _wake(conn, waker, stream_id)
    return recorded


async def hold_admission_gate(conn: Connection) -> None:
    """Hold the admission gate exclusively until the current transaction ends: the admission
    loop, around each admission decision (query `admission_gate_shared` says why)."""
    await conn.execute(QUERIES["admission_gate"], locks.ADMISSION_GATE)


async def _wake(conn: Connection, waker: Waker | None, stream_id: str) -> None:
    if waker is None:
        await store.notify_appended(conn, [stream_id])
    else:
        waker.wake([stream_id])


def _embedded(sql: str) -> str:
    return sql.rstrip().removesuffix(";")


_ROW_SOURCE: Final = re.compile(r"^FROM unnest\(", re.MULTILINE)


def _after_gate(append: str) -> str:
    """The append statement with its rows drawn only once `gate` (a CTE of the enclosing
    statement) has taken the lock: every row of `FROM gate, unnest(...)` needs gate's row."""
    gated, found = _ROW_SOURCE.subn("FROM gate, unnest(", append)
    if found != 1:
        raise ValueError("expected one line starting 'FROM unnest(' in the append statement")
    return gated


# New jobs' first events and their rows in one statement: one round trip for a whole group
# of submits (the hottest write path; service.submissions). It first takes the admission gate
# shared ($27; query `admission_gate_shared` says why), before the append gives the transaction
# an id and positions: a new job is one the next admission decision sees or comes after.
NEW_JOBS: Final = (  # our own SQL text; every value is a parameter
    "WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($27)),\n"  # noqa: S608
    f"appended AS (\n{_after_gate(_embedded(EVENT_QUERIES['append_new_streams']))}\n),\n"
    f"job AS (\n{_embedded(QUERIES['insert_new_jobs'])}\n)\n"
    "SELECT stream_id, position, transaction_id, recorded_at FROM appended"
)


class NewJob(msgspec.Struct, frozen=True):
    """A job's first event, as `new_job` checks it, ready for `record_new_jobs`."""

    after: JobState
    event: JobEvent
    metadata: Mapping[str, Any]


def new_job(
    before: JobState, events: Sequence[JobEvent], metadata: Mapping[str, Any]
) -> NewJob | None:
    """The decided `events` as a `NewJob` if `record_new_jobs` can record them (the first and
    only event of a job that does not start in PROGRESS), else None (use `record_job`)."""
    if before.version != 0 or len(events) != 1:
        return None
    after = evolve(before, events[0])
    return None if after.status == "PROGRESS" else NewJob(after, events[0], metadata)


async def record_new_jobs(
    conn: Connection, jobs: Sequence[NewJob], waker: Waker | None = None
) -> list[list[RecordedEvent]]:
    """Record several new jobs in one statement, all or none: if any job's stream exists
    (StreamVersionConflict) or any row is refused (e.g. a reused Idempotency-Key), nothing
    is recorded. The events get consecutive positions in the order given. The statement
    holds the admission gate shared: no admission decision overlaps it."""
    prepared = [store.prepare(to_new_events([job.event]), job.metadata) for job in jobs]
    ids = [job.after.job_id for job in jobs]
    columns = list(zip(*(job_columns(job.after)[1:] for job in jobs), strict=True))
    args = store.new_streams_args(list(zip(ids, prepared, strict=True)))
    # Jobs with an operations record (a runtime limit, requeued), a scheduling row (a GPU
    # type or priority not the default) or dependencies (`after`) get them in the same
    # transaction; the common case stays one statement.
    extra = [
        job.after
        for job in jobs
        if operations_of(job.after) is not None or scheduling_columns(job.after) is not None
    ]
    edges = dependency_rows([job.after for job in jobs])
    async with conn.transaction() if extra or edges else contextlib.nullcontext():
        with store.append_errors(ids[0] if len(ids) == 1 else f"{len(ids)} new jobs", 0):
            rows = await conn.fetch(NEW_JOBS, *args, ids, *map(list, columns), locks.ADMISSION_GATE)
        for after in extra:
            await write_operations(conn, None, after)
            await write_scheduling(conn, after)
        if edges is not None:
            await conn.execute(DEPENDENCIES["insert_dependencies"], *edges)
    by_stream = {row[0]: (row[1], row[2], row[3]) for row in rows}
    if len(by_stream) != len(ids):
        raise RuntimeError(f"{len(ids)} new jobs, {len(by_stream)} recorded")  # cannot happen
    if waker is None:
        await store.notify_appended(conn, ids)
    else:
        waker.wake(ids)
    return [
        store.recorded(job_id, 0, one, [by_stream[job_id]])
        for job_id, one in zip(ids, prepared, strict=True)
    ]


async def record_job(
    conn: Connection,
    before: JobState,
    events: Sequence[JobEvent],
    metadata: Mapping[str, Any],
    waker: Waker | None = None,
) -> tuple[JobState, list[RecordedEvent]]:
    """Append job events (expecting `before.version`) and write the job's row and load."""
    first = new_job(before, events, metadata)
    if first is not None:
        (recorded,) = await record_new_jobs(conn, [first], waker)
        return first.after, recorded

    after = before
    for event in events:
        after = evolve(after, event)

    async def project(recorded: list[RecordedEvent]) -> None:
        await write_job(conn, before, after, recorded[-1].position)

    frees_a_slot = before.status == "PROGRESS" and after.status != "PROGRESS"
    recorded = await _record(
        conn, after.job_id, before.version, events, metadata, project, waker, gate=frees_a_slot
    )
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

    sets_a_cap = any(isinstance(event, UserCapSet | UserShareSet) for event in events)
    recorded = await _record(
        conn,
        user_stream(after.email),
        before.version,
        events,
        metadata,
        project,
        waker,
        gate=sets_a_cap,
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
