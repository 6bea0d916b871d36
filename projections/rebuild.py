"""Rebuild the projections from the log and compare them with the live tables.

The rebuild folds every stream with the same `evolve` the service uses, fills temporary twins
of the projection tables (bulk COPY for jobs and user load), and then either compares them
with the live tables (`verify`) or replaces the live tables with them (`rebuild`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from events.domain import codec
from events.domain.aggregates import BY_EVENT_TYPE
from events.domain.directory import SCHEDULER, USER
from events.domain.directory_events import SchedulerEvent, UserEvent
from events.domain.job import JOB, JobState, evolve, initial_state
from events.domain.job_events import JobEvent
from events.domain.operations import operations_of
from events.domain.usage import usage_of
from events.store.log import Connection, Cursor, RecordedEvent, recorded_event
from projections.sql import DEPENDENCIES, QUERIES
from projections.writers import (
    JOB_COLUMNS,
    dependency_rows,
    job_columns,
    operations_columns,
    scheduling_columns,
    usage_columns,
    waits_in_queue,
    write_directory,
)

BATCH = 5000
# table -> (key column, rows worth comparing)
COMPARED = {
    "jobs": ("id", "TRUE"),
    "user_load": ("user_id", "progress_count > 0 OR progress_gpus > 0"),
    "users": ("id", "TRUE"),
    "api_keys": ("id", "TRUE"),
    "scheduler_state": ("singleton", "TRUE"),
    "job_usage": ("job_id", "TRUE"),
    "job_dependencies": ("job_id", "TRUE"),
    "job_operations": ("job_id", "TRUE"),
    "job_scheduling": ("job_id", "TRUE"),
}


async def _log(conn: Connection) -> AsyncIterator[RecordedEvent]:
    after = Cursor.START
    while True:
        rows = await conn.fetch(
            QUERIES["log_in_order"], after.transaction_id, after.position, BATCH
        )
        for row in rows:
            yield recorded_event(row, with_metadata=False)
        if len(rows) < BATCH:
            return
        after = Cursor(rows[-1][1], rows[-1][0])


async def _fill_temp_tables(conn: Connection) -> int:
    """Create and fill the temporary twins; returns how many events were folded."""
    await conn.execute(QUERIES["rebuild_tables"])
    await conn.execute(DEPENDENCIES["rebuild_dependencies_table"])
    jobs: dict[str, tuple[JobState, int]] = {}
    count = 0
    async for row in _log(conn):
        count += 1
        event = codec.decode(row.type, row.schema_version, row.data)
        decider = BY_EVENT_TYPE[row.type]
        if decider is JOB:
            state, _ = jobs.get(row.stream_id, (initial_state(), 0))
            jobs[row.stream_id] = (evolve(state, _as_job(event)), row.position)
        elif decider in (USER, SCHEDULER):
            await write_directory(conn, _as_directory(event))
        # the webhooks table is not a projection: it holds what the log does not
    await conn.copy_records_to_table(
        "jobs", records=[_job_record(s, p) for s, p in jobs.values()], columns=JOB_COLUMNS,
        schema_name="pg_temp",
    )  # fmt: skip
    load: dict[str, tuple[int, int]] = {}
    for state, _ in jobs.values():
        if state.status == "PROGRESS":
            n, gpus = load.get(state.user_id, (0, 0))
            load[state.user_id] = (n + 1, gpus + state.gpu_count)
    await conn.copy_records_to_table(
        "user_load", records=[(u, n, g) for u, (n, g) in load.items()], schema_name="pg_temp"
    )
    usage = [usage_of(state) for state, _ in jobs.values()]
    await conn.copy_records_to_table(
        "job_usage",
        records=[usage_columns(u) for u in usage if u is not None],
        schema_name="pg_temp",
    )
    edges = dependency_rows(state for state, _ in jobs.values() if waits_in_queue(state))
    if edges is not None:
        await conn.copy_records_to_table(
            "job_dependencies", records=list(zip(*edges, strict=True)), schema_name="pg_temp"
        )
    operations = [operations_of(state) for state, _ in jobs.values()]
    await conn.copy_records_to_table(
        "job_operations",
        records=[operations_columns(o) for o in operations if o is not None],
        schema_name="pg_temp",
    )
    scheduling = [scheduling_columns(state) for state, _ in jobs.values()]
    await conn.copy_records_to_table(
        "job_scheduling", records=[r for r in scheduling if r is not None], schema_name="pg_temp"
    )
    return count


def _as_job(event: codec.AnyEvent) -> JobEvent:
    return event  # type: ignore[return-value]  # routed by the type -> decider table


def _as_directory(event: codec.AnyEvent) -> UserEvent | SchedulerEvent:
    return event  # type: ignore[return-value]


def _job_record(s: JobState, position: int) -> tuple[object, ...]:
    return (*job_columns(s), position)


async def _differences(conn: Connection, limit: int) -> list[str]:
    found: list[str] = []
    for table, (key, where) in COMPARED.items():
        # Table and column names come from COMPARED above, never from input.
        sql = (
            f"(SELECT 'live' AS side, t.* FROM public.{table} t WHERE {where} EXCEPT ALL "  # noqa: S608
            f" SELECT 'live', t.* FROM pg_temp.{table} t WHERE {where})"
            f" UNION ALL (SELECT 'rebuilt', t.* FROM pg_temp.{table} t WHERE {where} EXCEPT ALL"
            f" SELECT 'rebuilt', t.* FROM public.{table} t WHERE {where})"
            f" ORDER BY {key}, side LIMIT {int(limit)}"
        )
        for row in await conn.fetch(sql):
            values = dict(row)
            side = values.pop("side")
            found.append(f"{table} {key}={values[key]}: {side} row {_short(values)}")
            if len(found) >= limit:
                return found
    return found


def _short(values: dict[str, object]) -> str:
    shown = {k: v for k, v in values.items() if k != "fireworks_payload"}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


async def verify(conn: Connection, *, limit: int = 20) -> list[str]:
    """Differences between the live projections and a rebuild from the log (empty: equal).

    Runs in one repeatable-read snapshot, so concurrent appends cannot cause false alarms."""
    async with conn.transaction(isolation="repeatable_read"):
        await _fill_temp_tables(conn)
        return await _differences(conn, limit)


async def rebuild(conn: Connection) -> int:
    """Replace the live projections with a rebuild from the log; returns events folded.

    Writers are blocked (EXCLUSIVE locks on the projection tables) until it commits."""
    async with conn.transaction():
        await conn.execute(QUERIES["lock_projections"])
        await conn.execute(DEPENDENCIES["lock_dependencies"])
        count = await _fill_temp_tables(conn)
        await conn.execute(QUERIES["replace_live"])
        await conn.execute(DEPENDENCIES["replace_dependencies"])
    return count
