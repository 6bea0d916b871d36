"""Job rows as API views: payload redacted, and for QUEUED jobs the queue position and the
reason they wait, from the same planner the admission loop uses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from events.domain.job import JobState
from events.domain.scheduling import (
    ADMIT_REASON,
    DEFAULT_PRIORITY,
    Admission,
    Job,
    Pass,
    Pending,
    Plan,
    pending_placements,
)
from events.store.log import Connection
from service.admission.dependencies import load_waits
from service.admission.history import SchedulingHistory
from service.admission.queue import (
    PassInputs,
    PlannerInputs,
    load_planner_inputs,
    load_queue,
    pass_inputs,
)
from service.api.batching import SharedRun
from service.api.runtime import Runtime
from service.api.schemas import JobView
from service.eta import with_etas
from service.redaction import redact
from service.sql import QUERIES

log = structlog.get_logger(__name__)

MAX_STALE_S: Final = 0.2  # how old a plan GET /jobs views and POST /jobs may use ...
# ... or 50 times what the plan took to make (re-planning takes at most 2 % of the CPU) ...
STALE_PER_BUILD: Final = 50
# ... but never more than this. A re-plan of a long queue stalls the requests in flight for
# a moment (its reads and its history catch-up run on the event loop): POST /jobs paced at
# 1.9k req/s, the queue growing past 10k, p99 18-41 ms re-planning every 2 s (8 runs),
# 11-21 ms every 5 s (4 runs; bench/README.md). Jobs this process places meanwhile are
# exact (`PlanSnapshot.place_new`); others' positions may lag up to twice this (`_recent`).
MAX_STALE_CAP_S: Final = 5.0
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
    # From `job_operations` (NULL when the job has no row there).
    max_runtime_minutes: int | None = None
    requeued_from: str | None = None
    stuck_reason: str | None = None
    # From `job_scheduling` (the defaults when the job has no row there).
    gpu_type: str = "h200"
    priority: int = 50


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
        max_runtime_minutes=state.max_runtime_minutes,
        requeued_from=state.requeued_from,
        stuck_reason=state.stuck_reason,
        gpu_type=state.gpu_type,
        priority=state.priority,
    )


def decode_payload(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    value = msgspec.json.decode(raw)
    return value if isinstance(value, dict) else {}


class PlanSnapshot(msgspec.Struct):
    """A plan of the whole queue, the pass it ended in, when it was read (monotonic, before
    reading) and how long it took; jobs submitted since are placed by more steps of that
    pass."""

    plan: Plan
    pass_: Pass
    placement: Placement
    taken_at: float
    build_s: float = 0.0
    fifo: bool = True  # the policy's order is the FIFO order (no fair share, no priorities)
    # The jobs in PROGRESS when the plan was read: a QUEUED row the plan does not know but
    # this does left the queue before the plan read it (admitted just after its submit).
    in_progress: frozenset[str] = frozenset()

    @property
    def fresh_for_s(self) -> float:
        """How long the snapshot may serve: MAX_STALE_S, or longer for a queue that takes a
        while to plan, so that re-planning never takes more than 1/STALE_PER_BUILD of a CPU."""
        return min(MAX_STALE_CAP_S, max(MAX_STALE_S, STALE_PER_BUILD * self.build_s))

    def can_place_last(self, job: Job) -> bool:
        """Whether a new job goes after every job of the snapshot in the policy's order."""
        return self.fifo and job.priority == DEFAULT_PRIORITY

    def place_new(self, job: Job) -> tuple[int, str]:
        """The placement of a job committed after the snapshot was read: one more step of the
        planning pass, from the state after the jobs placed before it (O(1)).

        It is exact for a job that comes after every job already in the snapshot in the
        policy's order (`can_place_last`), the usual case. A submit that overlaps others by a
        few milliseconds may be placed after a job created a moment later (the order the
        placements ran in); every later read, planned afresh, orders them by `created_at`."""
        entry = self.pass_.step(job)
        self.placement[job.job_id] = _entry(entry)
        return self.placement[job.job_id]


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
    """The latest plan if it is fresh enough (`PlanSnapshot.fresh_for_s`). A plan up to twice
    that old is still used while a new one is made in the background, so under steady load no
    request waits for a re-plan. Older than that: the one being made (it started at most a run
    ago), else a new one. At most one run at a time on this path."""
    snapshot: PlanSnapshot | None = runtime.plan_snapshot
    if snapshot is not None:
        age, fresh_for = time.monotonic() - snapshot.taken_at, snapshot.fresh_for_s
        if age <= fresh_for:
            return snapshot
        if age <= 2 * fresh_for:
            _refresh_in_background(runtime)
            return snapshot
    return await _plans(runtime).get_any()


def _refresh_in_background(runtime: Runtime) -> None:
    plans = _plans(runtime)
    if not plans.running:
        plans.start()


def _queued_job(r: JobRow) -> Job:
    return Job(
        r.id,
        r.user_id,
        r.created_at,
        r.gpu_count,
        r.gpu_type,
        r.kind,
        r.priority,
        r.max_runtime_minutes,
    )


async def row_placements(
    runtime: Runtime, rows: Sequence[JobRow], waiting: Mapping[str, str | None] | None = None
) -> tuple[Placement, set[str]]:
    """Placements of the QUEUED `rows` (read before this call) from a recent plan (at most
    `fresh_for_s` old), and the rows that plan shows already admitted. A single row that plan
    does not know is a job committed after it was made (typically one this request has just
    submitted): being the newest, it goes last, so it is placed from that plan without
    planning again (`PlanSnapshot.place_new`) — unless the plan has it in PROGRESS: read
    after the job's own admission (a cold plan made after the submit), it would count the
    job against itself ("you already have a job in PROGRESS"). Only a row this request has
    just submitted (`waiting` names it) is placed so; one that waits for others (`after`)
    goes last of all with its reason. With several unknown rows, or one that may not go last
    (fair share, a priority), the placements come from a plan made after this call (the
    plan knows which jobs wait for others; a row does not)."""
    queued = [r for r in rows if r.state == "QUEUED"]
    if not queued:
        return {}, set()
    snapshot = await _recent(runtime)
    known = snapshot.placement
    out: Placement = {}
    unknown: list[JobRow] = []
    for r in queued:
        placed = known.get(r.id)
        held = waiting.get(r.id) if waiting is not None else None
        if placed is not None:
            out[r.id] = placed
        elif held is not None:  # new, waits for others: last of all
            out[r.id] = (len(known) + len(out) + 1, held)
        elif r.id not in snapshot.in_progress:
            unknown.append(r)
    admitted = {r.id for r in queued if r.id in snapshot.in_progress and r.id not in known}
    if not unknown:
        return out, admitted
    if len(unknown) == 1 and waiting is not None and unknown[0].id in waiting:
        job = _queued_job(unknown[0])
        if snapshot.can_place_last(job):
            out[job.job_id] = snapshot.place_new(job)
            return out, admitted
    fresh = await _fresh(runtime)
    admitted |= {r.id for r in unknown if r.id in fresh.in_progress}
    return fresh.placement, admitted


async def _plan_now(runtime: Runtime) -> PlanSnapshot:
    async with runtime.pool.acquire() as conn:
        snapshot = await _snapshot(conn, runtime)
    current = runtime.plan_snapshot
    if current is None or current.taken_at <= snapshot.taken_at:
        runtime.plan_snapshot = snapshot
    return snapshot


def history_of(runtime: Runtime) -> SchedulingHistory:
    """The admission loop's history when it runs here, else this process's own."""
    if runtime.loop is not None:
        return runtime.loop.history
    if runtime.history is None:
        settings = runtime.settings
        runtime.history = SchedulingHistory(
            settings.default_runtime_minutes, settings.fair_share_half_life_hours
        )
    history: SchedulingHistory = runtime.history
    return history


def headroom_now(runtime: Runtime, inputs: PlannerInputs) -> dict[str, int]:
    """Free GPUs per type for explaining the queue, never waiting on Fireworks: the headroom
    the admission loop last read, when it runs here, else the capacity cache's last reading
    (refreshed by its own task when stale)."""
    ours = inputs.gpus_by_type()
    if runtime.loop is not None:
        last = runtime.loop.last_capacity
        if last is not None:
            return last.headroom_with(ours)
    return runtime.capacity.peek(ours).headroom()


async def _snapshot(conn: Connection, runtime: Runtime) -> PlanSnapshot:
    settings = runtime.settings
    taken_at = time.monotonic()
    history = history_of(runtime)
    if runtime.loop is None:  # the loop keeps its own current; incremental, no snapshot
        await history.catch_up(conn)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        queue = await load_queue(conn)
        inputs = await load_planner_inputs(conn)
        waits = await load_waits(conn)
    held: list[tuple[Job, str]] = []
    if waits.after:  # jobs waiting for others (`after`) are planned without, placed last
        queue, held = waits.split(queue)
    in_progress = frozenset(r.job_id for r in inputs.running)
    headroom = headroom_now(runtime, inputs)
    p = pass_inputs(inputs, settings, history, runtime.clock())
    # In a thread: planning a long queue and indexing its placements take milliseconds of CPU
    # (100k queued: about 0.1 s), and on the event loop every request in flight would wait
    # them out; in a thread they interleave (GIL slices).
    plan, pass_, out = await asyncio.to_thread(_plan_placed, queue, p, headroom)
    for n, (job, reason) in enumerate(held, start=len(out) + 1):
        out[job.job_id] = (n, reason)
    build_s = time.monotonic() - taken_at
    fifo = p.policy.name != "fair-share" and all(j.priority == DEFAULT_PRIORITY for j in queue)
    return PlanSnapshot(plan, pass_, out, taken_at, build_s, fifo, in_progress)


def _plan_placed(
    queue: list[Job], p: PassInputs, headroom: dict[str, int]
) -> tuple[Plan, Pass, Placement]:
    """The plan of the whole queue, the pass it ended in, each job's (position, reason)."""
    pass_ = p.new_pass(headroom)
    plan = pass_.plan(p.order(queue), explain=True)
    out: Placement = {}
    for admission in plan.admit:
        out[admission.job.job_id] = (admission.queue_position, ADMIT_REASON)
    out.update(pending_placements(plan.pending))  # (no `Pending` objects built)
    return plan, pass_, out


def job_view(row: JobRow, placement: Placement | None = None) -> JobView:
    position, reason = (None, None)
    stuck_reason = row.stuck_reason if row.state == "PROGRESS" else None
    if row.state == "QUEUED" and placement is not None:
        position, reason = placement.get(row.id, (None, None))
    return JobView(
        id=row.id,
        kind=row.kind,
        state=row.state,
        display_name=row.display_name,
        gpu_count=row.gpu_count,
        gpu_type=row.gpu_type,  # type: ignore[arg-type]  # validated on submit
        priority=row.priority,
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
        max_runtime_minutes=row.max_runtime_minutes,
        requeued_from=row.requeued_from,
        stuck=stuck_reason is not None,
        stuck_reason=stuck_reason,
    )


async def job_views(
    runtime: Runtime, rows: Iterable[JobRow], waiting: Mapping[str, str | None] | None = None
) -> list[JobView]:
    """Views of rows read *before* this call (placements: see `row_placements`). `waiting`:
    jobs this request has just submitted, with the reason each waits for others (`after`),
    None if it does not."""
    rows = list(rows)
    placement, admitted = await row_placements(runtime, rows, waiting)
    if admitted:  # read QUEUED, admitted since: show them as they are now
        rows = [await _reread(runtime, r) if r.id in admitted else r for r in rows]
    return with_etas(runtime.eta, [job_view(r, placement) for r in rows])


async def _reread(runtime: Runtime, row: JobRow) -> JobRow:
    record = await runtime.pool.fetchrow(QUERIES["api_job_by_id"], row.id)
    return row if record is None else job_row(record)
