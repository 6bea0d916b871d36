"""SQL writers that keep the projection tables in step with the log.

Job rows are written whole from the folded `JobState` (the same `evolve` the replay tool
uses), so a row can never disagree with its stream; user load moves by the difference
between the state before and after."""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

import msgspec

from events.domain.directory import SCHEDULER, USER
from events.domain.directory_events import (
    KeyIssued,
    KeyRevoked,
    PolicyInForce,
    SchedulerEvent,
    SchedulerPaused,
    SchedulerResumed,
    UserAdded,
    UserCapSet,
    UserEvent,
    UserMaxPrioritySet,
    UserShareSet,
)
from events.domain.job import JOB, JobState
from events.domain.operations import JobOperations, operations_of
from events.domain.scheduling.model import DEFAULT_GPU_TYPE, DEFAULT_PRIORITY
from events.domain.usage import JobUsage, usage_of
from events.store.log import Connection
from projections.sql import DEPENDENCIES, QUERIES

_json = msgspec.json.Encoder()


# The `jobs` table's columns in table order (migration 0001_projections; the migration test,
# the writers' SQL and the rebuild's COPY are checked against or built from this list).
# `last_position` is the row's checkpoint, not part of the state: the recorder writes it.
JOB_COLUMNS: Final = (
    "id", "user_id", "user_email", "kind", "state", "display_name", "gpu_count",
    "fireworks_payload", "created_at", "started_at", "completed_at", "error",
    "fireworks_job_id", "fireworks_job_name", "fireworks_state", "progress",
    "admission_open", "cancel_requested_by", "idempotency_key", "request_fingerprint",
    "version", "last_position",
)  # fmt: skip
_STATE_FIELD: Final = {"id": "job_id", "state": "status"}  # where a column's name differs
_state_fields: Final = operator.attrgetter(*(_STATE_FIELD.get(c, c) for c in JOB_COLUMNS[:-1]))
_PAYLOAD: Final = JOB_COLUMNS.index("fireworks_payload")


def job_columns(after: JobState) -> tuple[Any, ...]:
    """The `jobs` row of a folded state, every column but `last_position`, in table order."""
    values = list(_state_fields(after))
    values[_PAYLOAD] = _json.encode(after.fireworks_payload).decode()
    return tuple(values)


def usage_columns(usage: JobUsage) -> tuple[Any, ...]:
    """The `job_usage` row of an accounting record, in table order."""
    return (
        usage.job_id,
        usage.user_id,
        usage.user_email,
        usage.kind,
        usage.gpu_count,
        usage.admitted_at,
        usage.completed_at,
        usage.accelerator_seconds,
        usage.estimated_cost,
    )


async def write_usage(conn: Connection, before: JobState, after: JobState) -> None:
    """Keep the job's `job_usage` row (GPU-hour accounting) in step; untouched while the
    job's accounting fields do not change (most events of a running job)."""
    was, now = usage_of(before), usage_of(after)
    if was == now:
        return
    if now is None:
        await conn.execute(QUERIES["delete_job_usage"], after.job_id)
    else:
        await conn.execute(QUERIES["upsert_job_usage"], *usage_columns(now))


def dependency_rows(
    jobs: Iterable[JobState],
) -> tuple[list[str], list[str], list[int]] | None:
    """The `job_dependencies` rows of new jobs (their `after`) as column arrays; None: none."""
    columns: tuple[list[str], list[str], list[int]] = ([], [], [])
    for job in jobs:
        for n, dependency in enumerate(job.after):
            columns[0].append(job.job_id)
            columns[1].append(dependency)
            columns[2].append(n)
    return columns if columns[0] else None


def waits_in_queue(state: JobState) -> bool:
    """Whether the job's `job_dependencies` rows exist: it waits for jobs and has never left
    the queue (a job back in the queue after a quota refusal had them all succeed)."""
    return bool(state.after) and state.status == "QUEUED" and state.admissions == 0


def scheduling_columns(state: JobState) -> tuple[Any, ...] | None:
    """The `job_scheduling` row of a job, or None when its GPU type and priority are the
    defaults (no row: the readers coalesce)."""
    if state.gpu_type == DEFAULT_GPU_TYPE and state.priority == DEFAULT_PRIORITY:
        return None
    return (state.job_id, state.gpu_type, state.priority)


async def write_scheduling(conn: Connection, after: JobState) -> None:
    row = scheduling_columns(after)
    if row is not None:
        await conn.execute(QUERIES["insert_job_scheduling"], *row)


def operations_columns(ops: JobOperations) -> tuple[Any, ...]:
    """The `job_operations` row of an operations record, in table order."""
    return (
        ops.job_id,
        ops.max_runtime_minutes,
        ops.requeued_from,
        ops.running,
        ops.admitted_at,
        ops.cancel_requested,
        ops.fireworks_state,
        ops.fireworks_state_since,
        ops.last_change_at,
        ops.stuck_reason,
        ops.stuck_since,
    )


async def write_operations(conn: Connection, before: JobState | None, after: JobState) -> None:
    """Keep the job's `job_operations` row in step; untouched while its record does not
    change (most events of a job); `before` None: a new job, which has no row yet."""
    was = operations_of(before) if before is not None else None
    now = operations_of(after)
    if was == now:
        return
    if now is None:
        await conn.execute(QUERIES["delete_job_operations"], after.job_id)
    else:
        await conn.execute(QUERIES["upsert_job_operations"], *operations_columns(now))


async def write_job(conn: Connection, before: JobState, after: JobState, position: int) -> None:
    await conn.execute(QUERIES["upsert_job"], *job_columns(after), position)
    if before.status is None:
        await write_scheduling(conn, after)
    await write_usage(conn, before, after)
    if waits_in_queue(before) and not waits_in_queue(after):
        await conn.execute(DEPENDENCIES["delete_dependencies"], after.job_id)
    await write_operations(conn, before, after)
    was, now = before.status == "PROGRESS", after.status == "PROGRESS"
    if was != now:
        sign = 1 if now else -1
        await conn.execute(QUERIES["add_user_load"], after.user_id, sign, sign * after.gpu_count)


async def write_directory(conn: Connection, event: UserEvent | SchedulerEvent) -> None:
    match event:
        case UserAdded():
            await conn.execute(
                QUERIES["insert_user"], event.user_id, event.email, event.role, event.at
            )
        case UserCapSet():
            query = "set_user_cap_big" if event.size_class == "big" else "set_user_cap"
            await conn.execute(QUERIES[query], event.user_id, event.cap, event.unlimited)
        case UserShareSet():
            await conn.execute(QUERIES["set_user_share"], event.user_id, event.share)
        case UserMaxPrioritySet():
            await conn.execute(QUERIES["set_user_max_priority"], event.user_id, event.max_priority)
        case PolicyInForce():
            settings = _json.encode(event.settings).decode()
            await conn.execute(QUERIES["set_policy_in_force"], event.policy, settings)
        case KeyIssued():
            await conn.execute(
                QUERIES["insert_key"],
                event.key_id,
                event.user_id,
                event.key_hash,
                event.label,
                event.at,
            )
        case KeyRevoked():
            await conn.execute(QUERIES["revoke_key"], event.key_id, event.at)
        case SchedulerPaused():
            await conn.execute(QUERIES["set_scheduler"], True, event.by, event.at, event.reason)
        case SchedulerResumed():
            await conn.execute(QUERIES["set_scheduler"], False, event.by, event.at, None)


async def project_job(
    conn: Connection, before: JobState, after: JobState, _: Sequence[Any], position: int
) -> None:
    await write_job(conn, before, after, position)


async def project_directory(
    conn: Connection, _before: Any, _after: Any, events: Sequence[Any], _position: int
) -> None:
    for event in events:
        await write_directory(conn, event)


# (conn, before, after, events, position of the last event) -> None
Projection = Callable[[Connection, Any, Any, Sequence[Any], int], Awaitable[None]]
# decider name -> what recording its events writes besides the log
PROJECTIONS: Final[dict[str, Projection]] = {
    JOB.name: project_job,
    USER.name: project_directory,
    SCHEDULER.name: project_directory,
}
