"""The figures the policies order by: effective priority (with aging), overdue, usage.

Effective priority = priority + whole aging periods waited (`aging_hours`), at most 100:
an older job never falls behind a newer one of the same priority, and a low-priority job
climbs one level per period until it gets its turn. With every job at the same priority
and no period elapsed between them, the FIFO order is `created_at` (ties: job id)."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import Final

from events.domain.scheduling.model import MAX_PRIORITY, Job, Policy


def effective_priority(job: Job, now: datetime, aging_hours: float) -> int:
    if aging_hours <= 0:
        return job.priority
    waited_h = max(0.0, (now - job.created_at).total_seconds()) / 3600.0
    return min(MAX_PRIORITY, job.priority + int(waited_h // aging_hours))


def overdue(job: Job, now: datetime, max_wait_hours: float) -> bool:
    """Waited longer than the fair-share policy's maximum: goes ahead of the usage order."""
    return max_wait_hours > 0 and (now - job.created_at).total_seconds() > max_wait_hours * 3600


def usage_key(user_id: str, usage: Mapping[str, float], policy: Policy) -> float:
    """A user's decayed GPU-seconds divided by their share weight (lower goes first)."""
    weight = policy.weight(user_id)
    used = usage.get(user_id, 0.0)
    return used / weight if weight > 0 else float("inf")


def is_fifo(queue: Sequence[Job]) -> bool:
    times = list(map(_CREATED, queue))
    if all(map(operator.lt, times, islice(times, 1, None))):  # the usual case, at C speed
        return True
    prev: tuple[datetime, str] | None = None
    for job in queue:
        key = (job.created_at, job.job_id)
        if prev is not None and key < prev:
            return False
        prev = key
    return True


_CREATED: Final = operator.attrgetter("created_at")


FairKey = tuple[int, int, float, datetime, str]  # (-priority, overdue ? 0 : 1, usage, created, id)


def fair_keys(
    queue: Sequence[Job], policy: Policy, now: datetime, usage: Mapping[str, float]
) -> list[FairKey]:
    """Each job's key in the fair-share order: effective priority (higher first), overdue
    jobs first, then the user's usage / weight (`usage_key`; 0 for an overdue job), then
    FIFO. The same figures as `effective_priority`, `overdue` and `usage_key`, the job's wait
    computed once."""
    aging = policy.aging_hours
    max_wait = policy.max_wait_hours
    late_s = max_wait * 3600
    shares: dict[str, float] = {}
    out: list[FairKey] = []
    add = out.append
    for job in queue:
        waited = (now - job.created_at).total_seconds()
        prio = job.priority
        if aging > 0:
            prio = min(MAX_PRIORITY, prio + int(max(0.0, waited) / 3600.0 // aging))
        if max_wait > 0 and waited > late_s:
            add((-prio, 0, 0.0, job.created_at, job.job_id))
            continue
        user = job.user_id
        share = shares.get(user)
        if share is None:
            share = shares[user] = usage_key(user, usage, policy)
        add((-prio, 1, share, job.created_at, job.job_id))
    return out


def fifo_sorted(queue: Sequence[Job]) -> list[Job]:
    return sorted(queue, key=lambda j: (j.created_at, j.job_id))
