"""The leader's operating checks of running jobs, after each full reconcile:

- runtime limits: a job past its limit gets `CancelRequested(by="ftq", reason="max runtime
  exceeded (N min)")` recorded first (the decision, once: the decider refuses a second), then
  the cancel on Fireworks (`service.cancellation.carry_out_cancel`), then `Cancelled` with the
  reason as its error. A leader that dies between the decision and the Fireworks call leaves a
  requested cancel, which the next leader's reconcile carries out like any other.
- stuck jobs: `StuckDetected` once per episode, a warning log line; never cancelled.

The rows read here only pick the candidates; each decision is made by the job's decider on
its current state (`EnforceRuntimeLimit`, `DetectStuck`)."""

from __future__ import annotations

from collections import Counter
from typing import Final

import structlog

from events.domain.job import JOB, JobState
from events.domain.job_commands import DetectStuck, EnforceRuntimeLimit, JobCommand
from events.domain.job_limits import runtime_exceeded, runtime_limit, stuck_reason
from events.domain.operations import JobOperations
from events.domain.rejections import CommandRejected
from service.admission.admit import AdmissionContext, settle
from service.commands import run_command
from service.settings import Settings
from service.sql import QUERIES

log = structlog.get_logger(__name__)

STEPS: Final = ("runtime_cancel_decided",)  # fault-hook steps (service.admission.loop)


async def check_running_jobs(ctx: AdmissionContext, settings: Settings) -> Counter[str]:
    """Enforce runtime limits and flag stuck jobs; returns counts ("runtime_cancelled",
    "stuck_detected", and "stuck": jobs flagged stuck now)."""
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(QUERIES["operations_running"])
    counts: Counter[str] = Counter()
    now = ctx.clock()
    default = settings.max_runtime_minutes
    stuck = 0
    for ops in (JobOperations(**dict(zip(_FIELDS, row, strict=True))) for row in rows):
        if ops.cancel_requested:
            continue  # a cancel is under way (reconcile carries it out)
        limit = runtime_limit(ops.max_runtime_minutes, default)
        if runtime_exceeded(ops.admitted_at, limit, now):
            enforce = EnforceRuntimeLimit(at=now, default_minutes=default)
            counts["runtime_cancelled"] += await _enforce(ctx, ops.job_id, enforce)
            continue
        if ops.stuck_reason is None:
            reason = stuck_reason(
                ops.fireworks_state,
                ops.fireworks_state_since,
                ops.last_change_at,
                now,
                stuck_minutes=settings.stuck_minutes,
                stalled_minutes=settings.stalled_minutes,
            )
            if reason is None:
                continue
            detect = DetectStuck(
                at=now,
                stuck_minutes=settings.stuck_minutes,
                stalled_minutes=settings.stalled_minutes,
            )
            if not await _detect(ctx, ops.job_id, detect):
                continue
            counts["stuck_detected"] += 1
        stuck += 1
    counts["stuck"] = stuck
    return counts


_FIELDS: Final = tuple(JobOperations.__struct_fields__)


async def _enforce(ctx: AdmissionContext, job_id: str, command: EnforceRuntimeLimit) -> int:
    """Record the decision, then carry out the cancel; 1 when this call decided it."""
    state = await _record(ctx, job_id, command)
    if state is None or state.cancel_reason is None:
        return 0
    log.warning(
        "job.runtime_limit_exceeded",
        job_id=job_id,
        reason=state.cancel_reason,
        max_runtime_minutes=state.max_runtime_minutes,
        admitted_at=state.admitted_at.isoformat() if state.admitted_at else None,
    )
    await ctx.checkpoint("runtime_cancel_decided", job_id)
    await settle(ctx, state)
    return 1


async def _detect(ctx: AdmissionContext, job_id: str, command: DetectStuck) -> bool:
    state = await _record(ctx, job_id, command)
    if state is None or state.stuck_reason is None:
        return False
    log.warning(
        "job.stuck_detected",
        job_id=job_id,
        fireworks_state=state.fireworks_state,
        reason=state.stuck_reason,
    )
    return True


async def _record(ctx: AdmissionContext, job_id: str, command: JobCommand) -> JobState | None:
    """The state after `command` when it recorded something; None when nothing was due (the
    job changed since the rows were read) or the decider refused."""
    try:
        state, recorded = await run_command(ctx.pool, JOB, job_id, command, ctx.metadata)
    except CommandRejected as exc:
        log.info("limits.command_refused", job_id=job_id, reason=exc.message)
        return None
    return state if recorded else None
