"""Admission planning: a pure function of the queue, per-user load, caps and GPU headroom.

Policies and their guarantees:
- `strict-fifo` (default): among jobs whose user is under the cap, admission follows
  (created_at, job id). If the earliest eligible job does not fit, nothing behind it is
  admitted in that pass, so a big job is never starved by small ones behind it.
- `backfill` (opt-in): jobs that do not fit are skipped and later eligible jobs that fit are
  admitted. Guarantee: FIFO among the jobs that fit; a big job may wait while smaller ones
  keep arriving (it is admitted first whenever it fits, since it stays ahead in order)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

PAUSED_REASON = "admission paused"


class QueuedJob(msgspec.Struct, frozen=True):
    job_id: str
    user_id: str
    created_at: datetime
    gpu_count: int


class Admission(msgspec.Struct, frozen=True):
    job: QueuedJob
    queue_position: int
    available_before: int


class Pending(msgspec.Struct, frozen=True):
    job: QueuedJob
    queue_position: int
    reason: str


class Plan(msgspec.Struct, frozen=True):
    admit: list[Admission]
    pending: list[Pending]
    available_after: int


class Load(msgspec.Struct, frozen=True):
    """What the planner needs to know about users: PROGRESS counts and caps."""

    progress: Mapping[str, int]
    caps: Mapping[str, int]
    default_cap: int

    def cap_of(self, user_id: str) -> int:
        return self.caps.get(user_id, self.default_cap)


def fifo_order(jobs: Iterable[QueuedJob]) -> list[QueuedJob]:
    return sorted(jobs, key=lambda j: (j.created_at, j.job_id))


def plan(
    queue: list[QueuedJob],
    load: Load,
    available: int,
    *,
    policy: str = "strict-fifo",
    paused: bool = False,
    explain: bool = True,
) -> Plan:
    """Decide which queued jobs to admit now; `queue` must be in FIFO order.

    With `explain`, every job not admitted gets its queue position (1 = next in admission
    order: jobs of users under their cap first, then the others, each in FIFO order) and a
    reason in plain words. Without it the pass stops as soon as nothing more can be admitted."""
    counts = dict(load.progress)
    admit: list[Admission] = []
    waiting: list[tuple[QueuedJob, str]] = []
    capped: list[tuple[QueuedJob, str]] = []
    blocker: QueuedJob | None = None
    for job in queue:
        user_count = counts.get(job.user_id, 0)
        cap = load.cap_of(job.user_id)
        if user_count >= cap:
            if explain:
                capped.append((job, _cap_reason(cap, load.progress.get(job.user_id, 0))))
            continue
        counts[job.user_id] = user_count + 1  # this job takes the user's next slot
        if paused:
            waiting.append((job, PAUSED_REASON))
        elif blocker is not None:
            waiting.append((job, f"behind job {blocker.job_id}"))
        elif job.gpu_count <= available:
            admit.append(Admission(job, len(admit) + 1, available))
            available -= job.gpu_count
            continue
        else:
            waiting.append((job, f"needs {job.gpu_count} GPUs, {available} free"))
            if policy == "strict-fifo":
                blocker = job
            else:  # backfill: a job that does not fit keeps no slot of its user's cap
                counts[job.user_id] = user_count
        if not explain and (blocker is not None or available <= 0 or paused):
            break
    pending = [
        Pending(job, len(admit) + i + 1, reason) for i, (job, reason) in enumerate(waiting + capped)
    ]
    return Plan(admit=admit, pending=pending, available_after=available)


def _cap_reason(cap: int, in_progress: int) -> str:
    if cap == 0:
        return "your cap is 0: admissions are off for you"
    if in_progress >= cap:
        if cap == 1:
            return "you already have a job in PROGRESS"
        return f"you already have {in_progress} jobs in PROGRESS (cap {cap})"
    return f"your earlier queued job goes first (cap {cap})"
