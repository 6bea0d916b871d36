"""ETAs of the live queue: a forward simulation of the current state under the live policy.

Running jobs end after the estimator's remaining time for a job that has run that long
(never sooner than `floor_s` from now), admitted ones after their estimate; nothing new
arrives. The estimator is the deployment's (runtimes of finished jobs) and is only read."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from events.domain.scheduling import Limits, Policy, RuntimeEstimator
from events.domain.simulation.eta import FLOOR_S, forward_starts
from events.domain.simulation.scheduler import DomainPlanner
from events.domain.simulation.trace import TraceJob


class LiveJob(msgspec.Struct, frozen=True, gc=False):
    """A QUEUED or PROGRESS job of the jobs projection (times: seconds since the epoch)."""

    job_id: str
    user_id: str
    gpu_count: int
    created_at: float
    started_at: float | None = None  # PROGRESS: when its admission started
    kind: str = "SFT"
    max_runtime_minutes: int | None = None


def _trace_job(job: LiveJob) -> TraceJob:
    return TraceJob(job.job_id, job.user_id, job.created_at, job.gpu_count, 0.0, kind=job.kind,
                    max_runtime_minutes=job.max_runtime_minutes)  # fmt: skip


def live_etas(
    queued: Sequence[LiveJob],
    running: Sequence[LiveJob],
    gpus: int,
    limits: Limits,
    policy: Policy,
    estimator: RuntimeEstimator,
    now: float,
    *,
    floor_s: float = FLOOR_S,
) -> dict[str, float]:
    """The estimated admission time of each of `queued` (in FIFO order) given `running`
    (ftq's jobs in PROGRESS) on `gpus` GPUs (ftq's share: the quota less what runs outside
    ftq). A job the forecast never admits (needs more than `gpus`) has no ETA."""
    planner = DomainPlanner(limits, policy, {"*": gpus}, epoch=now)
    planner.state.estimator = estimator
    planner.learn = False
    started: dict[str, tuple[TraceJob, float]] = {}
    for job in running:
        trace_job = _trace_job(job)
        start = now if job.started_at is None else min(job.started_at, now)
        planner.start_running(trace_job, start)
        started[job.job_id] = (trace_job, start)
    waiting = {j.job_id: _trace_job(j) for j in queued}
    for trace_job in waiting.values():
        planner.arrive(trace_job, now)
    found: dict[str, float] = {}
    for job_id in planner.plan(now):  # what the next pass admits: now
        found[job_id] = now
        started[job_id] = (waiting[job_id], now)
    rest = [j.job_id for j in queued if j.job_id not in found]
    found.update(forward_starts(planner, started, rest, now, floor_s=floor_s))
    return found
