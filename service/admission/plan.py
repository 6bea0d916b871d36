"""Admission planning: a pure function of the queue, per-user load, caps and GPU headroom.

Policies and their guarantees:
- `strict-fifo` (default): among jobs whose user is under the cap, admission follows
  (created_at, job id). If the earliest eligible job does not fit, nothing behind it is
  admitted in that pass, so a big job is never starved by small ones behind it.
- `backfill` (opt-in): jobs that do not fit are skipped and later eligible jobs that fit are
  admitted. Guarantee: FIFO among the jobs that fit; a big job may wait while smaller ones
  keep arriving (it is admitted first whenever it fits, since it stays ahead in order)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec

PAUSED_REASON = "admission paused"


class QueuedJob(msgspec.Struct, frozen=True, gc=False):
    job_id: str
    user_id: str
    created_at: datetime
    gpu_count: int


class Admission(msgspec.Struct, frozen=True, gc=False):
    job: QueuedJob
    queue_position: int
    available_before: int


class Pending(msgspec.Struct, frozen=True, gc=False):
    job: QueuedJob
    queue_position: int
    reason: str


class Plan(msgspec.Struct, frozen=True):
    admit: list[Admission]
    pending: list[Pending]
    available_after: int
    # The state the pass ended in (complete only with `explain`): the job that blocks
    # everything behind it under strict FIFO, each user's slots taken (PROGRESS + the queued
    # jobs that took a slot). `place_last` places a job appended to the queue from these.
    blocker: QueuedJob | None = None
    slots: dict[str, int] = msgspec.field(default_factory=dict)
    waiting: int = 0  # pending jobs of users under their cap (the first `waiting` of pending)


class Load(msgspec.Struct, frozen=True):
    """What the planner needs to know about users: PROGRESS counts and caps."""

    progress: Mapping[str, int]
    caps: Mapping[str, int]
    default_cap: int

    def cap_of(self, user_id: str) -> int:
        return self.caps.get(user_id, self.default_cap)


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
    progress = load.progress
    caps_get = load.caps.get
    default_cap = load.default_cap
    counts_get = counts.get
    admit: list[Admission] = []
    # Jobs and reasons in parallel lists (no tuple per job); a reason is built once per
    # distinct text: the blocker's, and one cap reason per user.
    waiting: list[QueuedJob] = []
    waiting_reasons: list[str] = []
    capped: list[QueuedJob] = []
    capped_reasons: list[str] = []
    cap_reasons: dict[str, str] = {}
    blocker: QueuedJob | None = None
    behind = ""
    for job in queue:
        user_id = job.user_id
        user_count = counts_get(user_id, 0)
        cap = caps_get(user_id, default_cap)
        if user_count >= cap:
            if explain:
                reason = cap_reasons.get(user_id)
                if reason is None:
                    reason = cap_reasons[user_id] = _cap_reason(cap, progress.get(user_id, 0))
                capped.append(job)
                capped_reasons.append(reason)
            continue
        counts[user_id] = user_count + 1  # this job takes the user's next slot
        if paused:
            waiting.append(job)
            waiting_reasons.append(PAUSED_REASON)
        elif blocker is not None:
            waiting.append(job)
            waiting_reasons.append(behind)
        elif job.gpu_count <= available:
            admit.append(Admission(job, len(admit) + 1, available))
            available -= job.gpu_count
            continue
        else:
            waiting.append(job)
            waiting_reasons.append(f"needs {job.gpu_count} GPUs, {available} free")
            if policy == "strict-fifo":
                blocker = job
                behind = f"behind job {job.job_id}"
            else:  # backfill: a job that does not fit keeps no slot of its user's cap
                counts[user_id] = user_count
        if not explain and (blocker is not None or available <= 0 or paused):
            break
    first = len(admit) + 1
    pending = list(map(Pending, waiting, range(first, first + len(waiting)), waiting_reasons))
    first += len(waiting)
    pending += map(Pending, capped, range(first, first + len(capped)), capped_reasons)
    return Plan(
        admit=admit,
        pending=pending,
        available_after=available,
        blocker=blocker,
        slots=counts,
        waiting=len(waiting),
    )


class PlanEnd(msgspec.Struct):
    """What `place_last` needs of a pass's end state: counts, the strict-FIFO blocker and
    the users' slots. Mutable: each placed job advances it in O(1)."""

    admitted: int
    pending: int
    waiting: int
    available_after: int
    blocker: QueuedJob | None
    slots: dict[str, int]

    @classmethod
    def of(cls, done: Plan) -> PlanEnd:
        return cls(
            admitted=len(done.admit),
            pending=len(done.pending),
            waiting=done.waiting,
            available_after=done.available_after,
            blocker=done.blocker,
            slots=dict(done.slots),
        )


def place_last(
    end: PlanEnd, load: Load, job: QueuedJob, *, paused: bool = False, policy: str = "strict-fifo"
) -> Admission | Pending:
    """Where `job` stands when the pass that ended in `end` takes one more step for it (the
    job comes after every job of that pass in FIFO order); advances `end` past it."""
    user_id = job.user_id
    cap = load.cap_of(user_id)
    taken = end.slots.get(user_id, 0)
    if taken >= cap:  # capped: last of all
        end.pending += 1
        return Pending(
            job, end.admitted + end.pending, _cap_reason(cap, load.progress.get(user_id, 0))
        )
    position = end.admitted + end.waiting + 1  # last of the jobs under their cap
    keeps_slot = True
    if paused:
        entry: Admission | Pending = Pending(job, position, PAUSED_REASON)
    elif end.blocker is not None:
        entry = Pending(job, position, f"behind job {end.blocker.job_id}")
    elif job.gpu_count <= end.available_after:
        end.admitted += 1
        admission = Admission(job, end.admitted, end.available_after)
        end.available_after -= job.gpu_count
        end.slots[user_id] = taken + 1
        return admission
    else:
        entry = Pending(job, position, f"needs {job.gpu_count} GPUs, {end.available_after} free")
        if policy == "strict-fifo":
            end.blocker = job
        else:  # backfill: a job that does not fit keeps no slot of its user's cap
            keeps_slot = False
    if keeps_slot:
        end.slots[user_id] = taken + 1
    end.waiting += 1
    end.pending += 1
    return entry


def _cap_reason(cap: int, in_progress: int) -> str:
    if cap == 0:
        return "your cap is 0: admissions are off for you"
    if in_progress >= cap:
        if cap == 1:
            return "you already have a job in PROGRESS"
        return f"you already have {in_progress} jobs in PROGRESS (cap {cap})"
    return f"your earlier queued job goes first (cap {cap})"
