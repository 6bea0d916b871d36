"""The policies' orders: priority with aging first, then FIFO or fair share.

Effective priority = priority + whole aging periods waited (`aging_hours`), at most 100:
an older job never falls behind a newer one of the same priority, and a low-priority job
climbs one level per period until it gets its turn. With every job at the same priority
and no period elapsed between them, the FIFO order is `created_at` (ties: job id)."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from events.domain.scheduling.model import DEFAULT_PRIORITY, MAX_PRIORITY, Job, Policy


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


def _is_fifo(queue: Sequence[Job]) -> bool:
    times = list(map(_CREATED, queue))
    if all(map(operator.lt, times, times[1:])):  # the usual case, at C speed
        return True
    prev: tuple[datetime, str] | None = None
    for job in queue:
        key = (job.created_at, job.job_id)
        if prev is not None and key < prev:
            return False
        prev = key
    return True


_CREATED: Final = operator.attrgetter("created_at")
_PRIORITY: Final = operator.attrgetter("priority")


def policy_order(
    queue: Sequence[Job], policy: Policy, now: datetime, usage: Mapping[str, float]
) -> list[Job]:
    """`queue` in the policy's order (any input order)."""
    aging = policy.aging_hours
    if policy.name == "fair-share":
        max_wait = policy.max_wait_hours
        keys: dict[str, float] = {}

        def fair_key(job: Job) -> tuple[int, int, float, datetime, str]:
            late = overdue(job, now, max_wait)
            share = 0.0
            if not late:
                share = keys.get(job.user_id, -1.0)
                if share < 0:
                    share = keys[job.user_id] = usage_key(job.user_id, usage, policy)
            prio = effective_priority(job, now, aging)
            return (-prio, 0 if late else 1, share, job.created_at, job.job_id)

        return sorted(queue, key=fair_key)
    if all(p == DEFAULT_PRIORITY for p in set(map(_PRIORITY, queue))):
        # same priority: aging keeps FIFO order, so no key per job is needed
        return list(queue) if _is_fifo(queue) else fifo_sorted(queue)
    return sorted(queue, key=lambda j: (-effective_priority(j, now, aging), j.created_at, j.job_id))


def fifo_sorted(queue: Sequence[Job]) -> list[Job]:
    return sorted(queue, key=lambda j: (j.created_at, j.job_id))
