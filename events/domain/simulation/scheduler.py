"""The domain planner (`events.domain.scheduling`) behind the simulator's `SimPlanner`
shape: the same `SchedulerState` and planning pass the admission loop runs, fed from
simulated time (seconds since the epoch, turned into UTC datetimes here).

Estimates come from the state's `RuntimeEstimator`, which sees only the runtimes of jobs
finished so far in the simulation, never a job's own `duration_s`."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from events.domain.scheduling import (
    DEFAULT_RUNTIME_MINUTES,
    Job,
    Limits,
    Policy,
    SchedulerState,
    policy_order,
)
from events.domain.simulation.trace import TraceJob

SINGLE_POOL = "*"
REBASE_HALF_LIVES = 64  # the fair-share ledger's reference time moves this far behind
FLOOR_S = 60.0  # a running job is never expected to end sooner than this from now


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """Simulated seconds since the epoch as a time (arithmetic, not a clock read)."""
    return EPOCH + timedelta(seconds=seconds)


class DomainPlanner:
    """`quota` is `{"*": N}` (one pool: every job counts against it) or GPUs per type."""

    def __init__(
        self,
        limits: Limits,
        policy: Policy,
        quota: Mapping[str, int],
        *,
        epoch: float,
        default_runtime_minutes: float = DEFAULT_RUNTIME_MINUTES,
    ) -> None:
        self.single = SINGLE_POOL in quota
        self.state = SchedulerState(
            limits, policy, quota, at(epoch), default_runtime_minutes=default_runtime_minutes
        )
        self.now = at(epoch)

    def arrive(self, job: TraceJob, now: float) -> None:
        gpu_type = SINGLE_POOL if self.single else job.gpu_type
        self.state.arrive(
            Job(job.job_id, job.user, at(job.submitted_at), job.gpu_count, gpu_type, job.kind)
        )

    def refresh(self, moment: datetime) -> None:
        """Running jobs past their expected end get a new one as known now: `now` plus
        the estimator's remaining time for a job that has run that long (≥ `FLOOR_S`)."""
        state = self.state
        for job_id, (job, run) in state.running.items():
            if run.expected_end <= moment:
                elapsed = (moment - run.started_at).total_seconds()
                left = state.estimator.remaining(job, elapsed, FLOOR_S)
                end = moment + timedelta(seconds=left)
                state.running[job_id] = (job, msgspec.structs.replace(run, expected_end=end))

    def remaining(self, job_id: str, now: float) -> float:
        """A running job's expected further runtime at `now` (≥ `FLOOR_S`)."""
        job, run = self.state.running[job_id]
        elapsed = now - run.started_at.timestamp()
        return self.state.estimator.remaining(job, elapsed, FLOOR_S)

    def plan(self, now: float) -> Sequence[str]:
        self.now = moment = at(now)
        if self.state.policy.name in ("reserve", "fair-share"):
            self.refresh(moment)
        done = self.state.plan(moment, explain=False)
        for admission in done.admit:
            self.state.admit(admission.job.job_id, moment)
        return [a.job.job_id for a in done.admit]

    def finish(self, job_id: str, now: float, runtime: float) -> None:
        moment = at(now)
        usage = self.state.usage
        if (moment - usage.epoch).total_seconds() > REBASE_HALF_LIVES * usage.half_life_s:
            usage.rebase(moment)
        self.state.finish(job_id, moment)

    def estimate(self, job_id: str) -> float:
        state = self.state
        job = state.queue.get(job_id)
        if job is None:
            job = state.running[job_id][0]
        return state.estimator.estimate(job)

    def position(self, job_id: str) -> int:
        state = self.state
        usage: Mapping[str, float] = {}
        if state.policy.name == "fair-share":
            usage = state.usage.at(self.now, [run for _, run in state.running.values()])
        order = policy_order(list(state.queue.values()), state.policy, self.now, usage)
        return 1 + next(i for i, j in enumerate(order) if j.job_id == job_id)

    def copy(self) -> DomainPlanner:
        return copy.deepcopy(self)
