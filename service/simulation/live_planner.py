"""The live admission planner (`service.admission.plan.plan`) behind the simulator's
`SimPlanner` shape: the same code the admission loop runs, fed from simulated state.

Interim: until the policies package's stateful API lands, this drives today's planner
(strict-fifo, backfill; one pool; per-user cap)."""

from __future__ import annotations

import copy
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from events.domain.simulation.trace import TraceJob
from service.admission.plan import Load, QueuedJob, plan

POLICIES: Final = ("strict-fifo", "backfill")
DEFAULT_RUNTIME_S: Final = 120 * 60.0


class LivePlanner:
    def __init__(self, policy: str, quota: int, user_cap: int | None) -> None:
        self.policy, self.available = policy, quota
        self.user_cap = user_cap if user_cap is not None else 1 << 30
        self.queue: list[QueuedJob] = []
        self.jobs: dict[str, TraceJob] = {}
        self.progress: dict[str, int] = {}
        self.observed: list[float] = []

    def arrive(self, job: TraceJob, now: float) -> None:
        self.jobs[job.job_id] = job
        at = datetime.fromtimestamp(job.submitted_at, UTC)
        self.queue.append(QueuedJob(job.job_id, job.user, at, job.gpu_count))
        self.queue.sort(key=lambda j: (j.created_at, j.job_id))

    def plan(self, now: float) -> Sequence[str]:
        load = Load(progress=self.progress, caps={}, default_cap=self.user_cap)
        done = plan(self.queue, load, self.available, policy=self.policy, explain=False)
        admitted = {a.job.job_id for a in done.admit}
        if admitted:
            self.queue = [j for j in self.queue if j.job_id not in admitted]
            for a in done.admit:
                self.progress[a.job.user_id] = self.progress.get(a.job.user_id, 0) + 1
                self.available -= a.job.gpu_count
        return [a.job.job_id for a in done.admit]

    def finish(self, job_id: str, now: float, runtime: float) -> None:
        job = self.jobs.pop(job_id)
        self.progress[job.user] -= 1
        self.available += job.gpu_count
        self.observed.append(runtime)

    def estimate(self, job_id: str) -> float:
        return statistics.median(self.observed) if self.observed else DEFAULT_RUNTIME_S

    def position(self, job_id: str) -> int:
        return 1 + next(i for i, j in enumerate(self.queue) if j.job_id == job_id)

    def copy(self) -> LivePlanner:
        return copy.deepcopy(self)
