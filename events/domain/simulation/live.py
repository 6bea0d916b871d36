"""ETAs of the live queue: a forward simulation of the current state under the live policy.

Running jobs end after the estimator's remaining time for a job that has run that long
(never sooner than `floor_s` from now), admitted ones after their estimate; nothing new
arrives. The estimator is the deployment's (runtimes of finished jobs) and is only read;
fair share starts from the deployment's usage ledger (a copy)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from events.domain.scheduling import (
    DEFAULT_GPU_TYPE,
    DEFAULT_PRIORITY,
    Job,
    Limits,
    Policy,
    RuntimeEstimator,
    UsageLedger,
)
from events.domain.simulation.eta import FLOOR_S, forward_starts
from events.domain.simulation.scheduler import DomainPlanner
from events.domain.simulation.trace import TraceJob


class LiveJob(msgspec.Struct, frozen=True, gc=False):
    """A QUEUED or PROGRESS job of the projections (times: seconds since the epoch)."""

    job_id: str
    user_id: str
    gpu_count: int
    created_at: float
    started_at: float | None = None  # PROGRESS: when its admission started
    kind: str = "SFT"
    max_runtime_minutes: int | None = None
    gpu_type: str = DEFAULT_GPU_TYPE
    priority: int = DEFAULT_PRIORITY


def queued_live(job: Job) -> LiveJob:
    """A QUEUED job of the planner as the forecast takes it."""
    return LiveJob(job.job_id, job.user_id, job.gpu_count, job.created_at.timestamp(),
                   kind=job.kind, max_runtime_minutes=job.max_runtime_minutes,
                   gpu_type=job.gpu_type, priority=job.priority)  # fmt: skip


_PACKED: Final = msgspec.msgpack.Decoder(tuple[list[Job], list[LiveJob]])
_ETAS: Final = msgspec.msgpack.Decoder(dict[str, float])


def pack_jobs(queued: Sequence[Job], running: Sequence[LiveJob]) -> bytes:
    """`live_etas_packed`'s jobs as one bytes object (msgpack): a forecast made in another
    process is sent one buffer to copy, not a long queue of objects to pickle, which holds
    the sender's GIL for tens of milliseconds (10k queued jobs) and stalls its requests."""
    return msgspec.msgpack.encode((queued, running))


def live_etas_packed(
    packed: bytes,
    gpus: Mapping[str, int],
    limits: Limits,
    policy: Policy,
    estimator: RuntimeEstimator,
    now: float,
    *,
    ledger: UsageLedger | None = None,
) -> bytes:
    """`live_etas` of the jobs `pack_jobs` packed; its ETAs packed too (`unpack_etas`)."""
    queued, running = _PACKED.decode(packed)
    found = live_etas([queued_live(j) for j in queued], running, gpus, limits, policy,
                      estimator, now, ledger=ledger)  # fmt: skip
    return msgspec.msgpack.encode(found)


def unpack_etas(packed: bytes) -> dict[str, float]:
    return _ETAS.decode(packed)


def _trace_job(job: LiveJob) -> TraceJob:
    return TraceJob(job.job_id, job.user_id, job.created_at, job.gpu_count, 0.0, kind=job.kind,
                    gpu_type=job.gpu_type, max_runtime_minutes=job.max_runtime_minutes,
                    priority=job.priority)  # fmt: skip


def live_etas(
    queued: Sequence[LiveJob],
    running: Sequence[LiveJob],
    gpus: Mapping[str, int],
    limits: Limits,
    policy: Policy,
    estimator: RuntimeEstimator,
    now: float,
    *,
    ledger: UsageLedger | None = None,
    floor_s: float = FLOOR_S,
) -> dict[str, float]:
    """The estimated admission time of each of `queued` (in FIFO order) given `running`
    (ftq's jobs in PROGRESS) on `gpus` GPUs per type (ftq's share: each type's quota less
    what runs outside ftq). A job the forecast never admits (needs more than its type has)
    has no ETA."""
    planner = DomainPlanner(limits, policy, dict(gpus), epoch=now)
    planner.state.estimator = estimator
    planner.learn = False
    if ledger is not None:
        planner.state.usage = copy.deepcopy(ledger)
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
