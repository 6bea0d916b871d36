"""The metrics of one simulated policy, exactly as the simulation issue defines them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

import msgspec

from events.domain.simulation.engine import JobRun, Outcome

BOUND_S: Final = 600.0  # bounded slowdown's floor on the runtime


class Metrics(msgspec.Struct, frozen=True):
    jobs: int
    unschedulable: int
    mean_wait_s: float
    p50_wait_s: float
    p95_wait_s: float
    max_wait_s: float
    utilization: float
    mean_bounded_slowdown: float
    jain_slowdown: float
    never_started: int = 0


def nearest_rank(ordered: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of an ascending sequence (0 when it is empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def bounded_slowdown(run: JobRun) -> float:
    floor = max(run.job.duration_s, BOUND_S)
    return (run.wait + floor) / floor


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index (Σx)² ÷ (n·Σx²); 1 for an empty or all-zero sequence."""
    square_sum = sum(x * x for x in values)
    if not values or square_sum == 0:
        return 1.0
    return sum(values) ** 2 / (len(values) * square_sum)


def utilization(runs: Sequence[JobRun], capacity: int) -> float:
    """GPU-seconds in use between the first and the last submission ÷ (capacity x span)."""
    if not runs or capacity <= 0:
        return 0.0
    first = min(r.job.submitted_at for r in runs)
    last = max(r.job.submitted_at for r in runs)
    if last <= first:
        return 0.0
    used = sum(r.job.gpu_count * max(0.0, min(r.end, last) - max(r.start, first)) for r in runs)
    return used / (capacity * (last - first))


def metrics(outcome: Outcome, capacity: int) -> Metrics:
    runs = outcome.runs
    waits = sorted(r.wait for r in runs)
    slowdowns: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        slowdowns[run.job.user].append(bounded_slowdown(run))
    every = [s for per_user in slowdowns.values() for s in per_user]
    per_user = [sum(s) / len(s) for _, s in sorted(slowdowns.items())]
    return Metrics(
        jobs=len(runs),
        unschedulable=len(outcome.unschedulable),
        mean_wait_s=sum(waits) / len(waits) if waits else 0.0,
        p50_wait_s=nearest_rank(waits, 50),
        p95_wait_s=nearest_rank(waits, 95),
        max_wait_s=waits[-1] if waits else 0.0,
        utilization=utilization(runs, capacity),
        mean_bounded_slowdown=sum(every) / len(every) if every else 0.0,
        jain_slowdown=jain(per_user),
        never_started=len(outcome.never_started),
    )
