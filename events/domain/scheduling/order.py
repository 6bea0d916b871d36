"""The policies' orders: priority with aging first, then FIFO or fair share.

Effective priority = priority + whole aging periods waited (`aging_hours`), at most 100:
an older job never falls behind a newer one of the same priority, and a low-priority job
climbs one level per period until it gets its turn. With every job at the same priority
and no period elapsed between them, the FIFO order is `created_at` (ties: job id). The
figures are in `keys`, the fair-share order in `fair_order`."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from events.domain.scheduling.fair_order import fair_order
from events.domain.scheduling.keys import (
    FairKey,
    effective_priority,
    fair_keys,
    fifo_sorted,
    is_fifo,
    overdue,
    usage_key,
)
from events.domain.scheduling.model import DEFAULT_PRIORITY, Job, Policy

__all__ = [
    "FairKey",
    "effective_priority",
    "fair_keys",
    "fifo_sorted",
    "is_fifo",
    "overdue",
    "policy_order",
    "usage_key",
]

_PRIORITY: Final = operator.attrgetter("priority")


def policy_order(
    queue: Sequence[Job], policy: Policy, now: datetime, usage: Mapping[str, float]
) -> list[Job]:
    """`queue` in the policy's order (any input order)."""
    aging = policy.aging_hours
    if policy.name == "fair-share":
        return fair_order(queue, policy, now, usage).jobs
    if all(p == DEFAULT_PRIORITY for p in set(map(_PRIORITY, queue))):
        # same priority: aging keeps FIFO order, so no key per job is needed
        return list(queue) if is_fifo(queue) else fifo_sorted(queue)
    return sorted(queue, key=lambda j: (-effective_priority(j, now, aging), j.created_at, j.job_id))
