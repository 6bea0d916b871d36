"""A scheduler's state in one object: what a discrete-event simulator (or a test) drives.

    state = SchedulerState(limits, policy, quota={"h200": 64}, epoch=t0)
    state.arrive(job)                    # a job is submitted
    done = state.plan(now)               # one pass: done.admit, done.pending, ...
    for a in done.admit:
        state.admit(a.job.job_id, now)   # it starts (PROGRESS)
    state.finish(job_id, now)            # it ends: its runtime feeds the estimator
    state.cancel(job_id, now)            # queued → gone; running → finished, no observation

Headroom is `quota` minus the GPUs of running jobs per type, unless `plan` is given it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from events.domain.scheduling.estimate import DEFAULT_RUNTIME_MINUTES, RuntimeEstimator
from events.domain.scheduling.model import Job, Limits, Plan, Policy, Running
from events.domain.scheduling.passes import plan
from events.domain.scheduling.usage import UsageLedger


class SchedulerState:
    def __init__(
        self,
        limits: Limits,
        policy: Policy,
        quota: Mapping[str, int],
        epoch: datetime,
        *,
        default_runtime_minutes: float = DEFAULT_RUNTIME_MINUTES,
    ) -> None:
        self.limits = limits
        self.policy = policy
        self.quota = dict(quota)
        self.queue: dict[str, Job] = {}
        self.running: dict[str, tuple[Job, Running]] = {}
        self.estimator = RuntimeEstimator(default_runtime_minutes)
        self.usage = UsageLedger(policy.half_life_hours, epoch)

    def arrive(self, job: Job) -> None:
        if job.job_id in self.queue or job.job_id in self.running:
            raise ValueError(f"job {job.job_id} is already known")
        self.queue[job.job_id] = job

    def headroom(self) -> dict[str, int]:
        free = dict(self.quota)
        for _, run in self.running.values():
            free[run.gpu_type] = free.get(run.gpu_type, 0) - run.gpu_count
        return free

    def plan(
        self,
        now: datetime,
        *,
        headroom: Mapping[str, int] | None = None,
        paused: bool = False,
        explain: bool = True,
    ) -> Plan:
        running = [run for _, run in self.running.values()]
        usage = self.usage.at(now, running) if self.policy.name == "fair-share" else None
        return plan(
            list(self.queue.values()),
            running,
            self.headroom() if headroom is None else headroom,
            self.limits,
            self.policy,
            now,
            estimate=self.estimator.estimate,
            usage=usage,
            paused=paused,
            explain=explain,
        )

    def admit(self, job_id: str, now: datetime) -> Running:
        job = self.queue.pop(job_id)
        expected = now + timedelta(seconds=self.estimator.estimate(job))
        run = Running(job.job_id, job.user_id, job.gpu_count, now, expected, job.gpu_type, job.kind)
        self.running[job_id] = (job, run)
        return run

    def finish(self, job_id: str, now: datetime, *, observed: bool = True) -> None:
        """A running job ended at `now`; `observed` runtimes feed the estimator."""
        job, run = self.running.pop(job_id)
        self.usage.finish(job.user_id, job.gpu_count, run.started_at, now)
        if observed:
            seconds = (now - run.started_at).total_seconds()
            self.estimator.observe(job.user_id, job.kind, job.gpu_count, seconds)

    def cancel(self, job_id: str, now: datetime) -> None:
        if job_id in self.queue:
            del self.queue[job_id]
        elif job_id in self.running:
            self.finish(job_id, now, observed=False)
        else:
            raise KeyError(job_id)
