"""Job rows as API views: payload redacted, and for QUEUED jobs the queue position and the
reason they wait, from the same planner the admission loop uses."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from events.job import JobState
from events.store import Connection
from service.admission.plan import Admission, Load, Pending, Plan, QueuedJob, place_new
from service.admission.plan import plan as make_plan
from service.admission.queue import is_paused, load_queue, load_user_load
from service.api.batching import SharedRun
from service.api.runtime import Runtime
from service.api.schemas import JobView
from service.redaction import redact

log = structlog.get_logger(__name__)

CAPACITY_TIMEOUT_S: Final = 2.0
MAX_STALE_S: Final = 0.2  # how old a plan GET /jobs views and POST /jobs may use
ADMIT_REASON: Final = "next to be admitted"
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


class PlanSnapshot(msgspec.Struct):
    """A plan of the whole queue, what it was made from, and when (monotonic, before reading).
    Jobs submitted since are appended to its end state as they are placed (`place_new`)."""

    plan: Plan
    load: Load
    paused: bool
    placement: Placement
    last: tuple[Any, str] | None  # FIFO key of the queue's last job
    taken_at: float
    queue: list[QueuedJob] = msgspec.field(default_factory=list)
    available: int = 0
    policy: str = "strict-fifo"

    def place_new(self, job: QueuedJob) -> tuple[int, str] | None:
        """The placement of a job committed after the snapshot was read, as planning the
        snapshot's queue with the job in it would place it: from the plan's end state when
        the job is last in FIFO order (the usual case), else (a concurrent submit that came
        earlier went in) by planning again in memory, or None with no queue kept."""
        key = (job.created_at, job.job_id)
        if self.last is None or key > self.last:
            entry, self.plan = place_new(
                self.plan, self.load, job, paused=self.paused, policy=self.policy
            )
            # Later submits are placed after this one (the snapshot's other entries stay
            # as planned, at most MAX_STALE_S old).
            self.last = key
            self.placement[job.job_id] = _entry(entry)
            return self.placement[job.job_id]
        if not self.queue:
            return None
        queue = list(self.queue)
        queue.insert(bisect.bisect(queue, key, key=lambda j: (j.created_at, j.job_id)), job)
        again = make_plan(queue, self.load, self.available, policy=self.policy, paused=self.paused)
        for admission in again.admit:
            if admission.job.job_id == job.job_id:
                return _entry(admission)
        for pending in again.pending:
            if pending.job.job_id == job.job_id:
                return _entry(pending)
        return None


def _entry(entry: Admission | Pending) -> tuple[int, str]:
    if isinstance(entry, Admission):
        return (entry.queue_position, ADMIT_REASON)
    return (entry.queue_position, entry.reason)


async def placements(runtime: Runtime) -> Placement:
    """Queue position and pending reason of every QUEUED job, from a plan made after this
    call (so a job committed before it is included); concurrent callers share one plan."""
    return (await _fresh(runtime)).placement


def _plans(runtime: Runtime) -> SharedRun[PlanSnapshot]:
    if runtime.plans is None:
        runtime.plans = SharedRun(lambda: _plan_now(runtime))
    plans: SharedRun[PlanSnapshot] = runtime.plans
    return plans


async def _fresh(runtime: Runtime) -> PlanSnapshot:
    return await _plans(runtime).get()


async def _recent(runtime: Runtime) -> PlanSnapshot:
    """The latest plan if it is at most MAX_STALE_S old, else the one being made (it
    started at most a run ago), else a new one: at most one run at a time on this path."""
    snapshot: PlanSnapshot | None = runtime.plan_snapshot
    if snapshot is not None and time.monotonic() - snapshot.taken_at <= MAX_STALE_S:
        return snapshot
    return await _plans(runtime).get_any()


async def row_placements(runtime: Runtime, rows: Sequence[JobRow]) -> Placement:
    """Placements of the QUEUED `rows` (read before this call) from a plan at most
    MAX_STALE_S old. A row that plan does not know is a job committed after it was made
    (typically one this request has just submitted): being the newest, it goes last, so it
    is placed from that plan without planning again (see plan.place_new). Otherwise (no
    recent plan, several unknown rows, or one that is not last in FIFO order) the placements
    come from a plan made after this call."""
    queued = [r for r in rows if r.state == "QUEUED"]
    if not queued:
        return {}
    snapshot = await _recent(runtime)
    known = snapshot.placement
    out: Placement = {}
    unknown: list[JobRow] = []
    for r in queued:
        placed = known.get(r.id)
        if placed is None:
            unknown.append(r)
        else:
            out[r.id] = placed
    if not unknown:
        return out
    if len(unknown) == 1:
        r = unknown[0]
        placed = snapshot.place_new(QueuedJob(r.id, r.user_id, r.created_at, r.gpu_count))
        if placed is not None:
            out[r.id] = placed
            return out
    return await placements(runtime)


async def _plan_now(runtime: Runtime) -> PlanSnapshot:
    async with runtime.pool.acquire() as conn:
        snapshot = await _snapshot(conn, runtime)
    current = runtime.plan_snapshot
    if current is None or current.taken_at <= snapshot.taken_at:
        runtime.plan_snapshot = snapshot
    return snapshot


async def _snapshot(conn: Connection, runtime: Runtime) -> PlanSnapshot:
    settings = runtime.settings
    taken_at = time.monotonic()
    available = await available_gpus(conn, runtime)
    queue = await load_queue(conn)
    load, _ = await load_user_load(conn, settings.user_cap)
    paused = await is_paused(conn)
    plan = make_plan(queue, load, available, policy=settings.policy, paused=paused)
    out: Placement = {}
    for admission in plan.admit:
        out[admission.job.job_id] = (admission.queue_position, ADMIT_REASON)
    for pending in plan.pending:
        out[pending.job.job_id] = (pending.queue_position, pending.reason)
    last = (queue[-1].created_at, queue[-1].job_id) if queue else None
    return PlanSnapshot(plan, load, paused, out, last, taken_at, queue, available, settings.policy)


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
    """Views of rows read *before* this call (placements: see `row_placements`)."""
    rows = list(rows)
    placement = await row_placements(runtime, rows)
    return [job_view(r, placement) for r in rows]
