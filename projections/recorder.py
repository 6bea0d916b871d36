"""Load an aggregate from its stream, and record new events together with the projection
rows they change, in one transaction, then wake the log's tailers: through the process's
`Waker` when given one (coalesced, sent in the background), else by a NOTIFY on the same
connection right after the commit.

These are the only functions that append to the log, so every event ever appended has its
projection written in the same transaction (DESIGN.md "Shape")."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from events.domain import codec
from events.domain.decider import Decider
from events.domain.job import JOB, JobState, evolve
from events.domain.job_events import JobEvent
from events.domain.operations import operations_of
from events.store import locks
from events.store import log as store
from events.store.log import Connection, RecordedEvent
from events.store.waker import Waker
from projections.sql import DEPENDENCIES, QUERIES
from projections.writers import (
    PROJECTIONS,
    dependency_rows,
    job_columns,
    scheduling_columns,
    write_operations,
    write_scheduling,
)


class Versioned(Protocol):
    """Every aggregate's state carries the version of its stream it was folded to."""

    @property
    def version(self) -> int: ...


C = TypeVar("C")
S = TypeVar("S", bound=Versioned)
E = TypeVar("E")


def to_new_events(events: Sequence[codec.AnyEvent]) -> list[store.NewEvent]:
    out = []
    for event in events:
        type_ = codec.event_type(event)
        out.append(store.NewEvent(type_, codec.encode(event), codec.schema_version(type_)))
    return out


async def load(conn: Connection, decider: Decider[C, S, E], key: str) -> S:
    """The aggregate of `key`, folded from its stream (`decider.initial` when it is empty)."""
    state = decider.initial
    for row in await store.read_stream(conn, decider.stream_id(key)):
        state = decider.evolve(state, codec.decode(row.type, row.schema_version, row.data))  # type: ignore[arg-type]
    return state


async def record(
    conn: Connection,
    decider: Decider[C, S, E],
    before: S,
    events: Sequence[E],
    metadata: Mapping[str, Any],
    waker: Waker | None = None,
) -> tuple[S, list[RecordedEvent]]:
    """Append `events` (expecting `before`'s version) and write the projection rows they
    change, in one transaction; nothing when `events` is empty. A transition that frees a
    slot first takes the admission gate shared (query `admission_gate_shared` says why)."""
    if decider is JOB:
        first = new_job(before, events, metadata)  # type: ignore[arg-type]
        if first is not None:  # the hot path: one statement (query `record_new_jobs`)
            (recorded,) = await record_new_jobs(conn, [first], waker)
            return first.after, recorded  # type: ignore[return-value]
    after = decider.fold(events, before)
    if not events:
        return after, []
    stream_id = decider.stream_id(decider.key(after))
    async with conn.transaction():
        if decider.frees_a_slot(before, after, events):  # first: see the query's comment
            await conn.execute(QUERIES["admission_gate_shared"], locks.ADMISSION_GATE)
        new_events = to_new_events(events)  # type: ignore[arg-type]
        recorded = await store.append(conn, stream_id, before.version, new_events, metadata)
        await PROJECTIONS[decider.name](conn, before, after, events, recorded[-1].position)
    await _wake(conn, waker, stream_id)
    return after, recorded


async def hold_admission_gate(conn: Connection) -> None:
    """Hold the admission gate exclusively until the current transaction ends: the admission
    loop, around each admission decision (query `admission_gate_shared` says why)."""
    await conn.execute(QUERIES["admission_gate"], locks.ADMISSION_GATE)


async def _wake(conn: Connection, waker: Waker | None, stream_id: str) -> None:
    if waker is None:
        await store.notify_appended(conn, [stream_id])
    else:
        waker.wake([stream_id])


class NewJob(msgspec.Struct, frozen=True):
    """A job's first event, as `new_job` checks it, ready for `record_new_jobs`."""

    after: JobState
    event: JobEvent
    metadata: Mapping[str, Any]


def new_job(
    before: JobState, events: Sequence[JobEvent], metadata: Mapping[str, Any]
) -> NewJob | None:
    """The decided `events` as a `NewJob` if `record_new_jobs` can record them (the first and
    only event of a job that does not start in PROGRESS), else None (use `record`)."""
    if before.version != 0 or len(events) != 1:
        return None
    after = evolve(before, events[0])
    return None if after.status == "PROGRESS" else NewJob(after, events[0], metadata)


DataKey = tuple[str, str, bytes]  # a `job_data_keys` row: job id, master key id, wrapped key


async def record_new_jobs(
    conn: Connection,
    jobs: Sequence[NewJob],
    waker: Waker | None = None,
    data_keys: Sequence[DataKey] = (),
) -> list[list[RecordedEvent]]:
    """Record several new jobs in one statement, all or none: if any job's stream exists
    (StreamVersionConflict) or any row is refused (e.g. a reused Idempotency-Key), nothing
    is recorded. The events get consecutive positions in the order given. The statement
    (query `record_new_jobs`) holds the admission gate shared: no admission decision
    overlaps it. `data_keys`: the data keys of those jobs' sealed payload secrets
    (service.secrets), stored by the same statement (a key already stored is kept)."""
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
    keys: tuple[list[Any], ...] = tuple(map(list, zip(*data_keys, strict=True))) or ([], [], [])
    async with conn.transaction() if extra or edges else contextlib.nullcontext():
        with store.append_errors(ids[0] if len(ids) == 1 else f"{len(ids)} new jobs", 0):
            rows = await conn.fetch(
                QUERIES["record_new_jobs"],
                locks.ADMISSION_GATE,
                *args,
                *map(list, columns),
                *keys,
            )
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
