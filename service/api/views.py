"""Job rows as API views: payload redacted, and for QUEUED jobs the queue position and the
reason they wait, from the same planner the admission loop uses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from events.job import JobState
from events.store import Connection
from service.admission.queue import explain_queue
from service.api.batching import SharedRun
from service.api.runtime import Runtime
from service.api.schemas import JobView
from service.redaction import redact

log = structlog.get_logger(__name__)

CAPACITY_TIMEOUT_S: Final = 2.0
Placement = dict[str, tuple[int, str]]


class JobRow(msgspec.Struct, frozen=True):
    """A row of the `api_job*` queries, in their column order."""

    id: str
    kind: Any
    state: Any
    display_name: str | None
    gpu_count: int
    created_at: Any
    started_at: Any
    completed_at: Any
    error: str | None
    fireworks_job_name: str | None
    fireworks_state: str | None
    progress: float | None
    user_email: str
    fireworks_payload: str | dict[str, Any]
    cancel_requested_by: str | None
    user_id: str
    request_fingerprint: str | None


def job_row(record: asyncpg.Record | Sequence[Any]) -> JobRow:
    return JobRow(*tuple(record))


def row_of_state(state: JobState) -> JobRow:
    """The row a job's projection holds, from its folded state (saves a read after a write)."""
    return JobRow(
        id=state.job_id,
        kind=state.kind,
        state=state.status,
        display_name=state.display_name,
        gpu_count=state.gpu_count,
        created_at=state.created_at,
        started_at=state.started_at,
        completed_at=state.completed_at,
        error=state.error,
        fireworks_job_name=state.fireworks_job_name,
        fireworks_state=state.fireworks_state,
        progress=state.progress,
        user_email=state.user_email,
        fireworks_payload=state.fireworks_payload,
        cancel_requested_by=state.cancel_requested_by,
        user_id=state.user_id,
        request_fingerprint=state.request_fingerprint,
    )


def decode_payload(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    value = msgspec.json.decode(raw)
    return value if isinstance(value, dict) else {}


async def available_gpus(conn: Connection, runtime: Runtime) -> int:
    """Free GPUs now, for explaining the queue; 0 when capacity cannot be read quickly."""
    try:
        async with asyncio.timeout(CAPACITY_TIMEOUT_S):
            return (await runtime.capacity.read(conn)).available
    except TimeoutError:
        log.warning("views.capacity_timeout")
        return 0


async def placements(runtime: Runtime) -> Placement:
    """Queue position and pending reason of every QUEUED job, from a plan made after this
    call (so a job committed before it is included); concurrent callers share one plan."""
    if runtime.plans is None:
        runtime.plans = SharedRun(lambda: _plan_now(runtime))
    result: Placement = await runtime.plans.get()
    return result


async def _plan_now(runtime: Runtime) -> Placement:
    async with runtime.pool.acquire() as conn:
        return await _placements(conn, runtime)


async def _placements(conn: Connection, runtime: Runtime) -> Placement:
    settings = runtime.settings
    plan = await explain_queue(
        conn,
        available=await available_gpus(conn, runtime),
        default_cap=settings.user_cap,
        policy=settings.policy,
    )
    out: Placement = {}
    for admission in plan.admit:
        out[admission.job.job_id] = (admission.queue_position, "next to be admitted")
    for pending in plan.pending:
        out[pending.job.job_id] = (pending.queue_position, pending.reason)
    return out


def job_view(row: JobRow, placement: Placement | None = None) -> JobView:
    position, reason = (None, None)
    if row.state == "QUEUED" and placement is not None:
        position, reason = placement.get(row.id, (None, None))
    return JobView(
        id=row.id,
        kind=row.kind,
        state=row.state,
        display_name=row.display_name,
        gpu_count=row.gpu_count,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        error=row.error,
        fireworks_job_name=row.fireworks_job_name,
        fireworks_state=row.fireworks_state,
        progress=row.progress,
        user=row.user_email,
        fireworks_payload=redact(decode_payload(row.fireworks_payload)),
        cancel_requested=row.cancel_requested_by is not None and row.state == "PROGRESS",
        queue_position=position,
        pending_reason=reason,
    )


async def job_views(runtime: Runtime, rows: Iterable[JobRow]) -> list[JobView]:
    """Views of rows read *before* this call (their placement comes from a later plan)."""
    rows = list(rows)
    placement = await placements(runtime) if any(r.state == "QUEUED" for r in rows) else {}
    return [job_view(r, placement) for r in rows]
