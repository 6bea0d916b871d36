"""The fair-share order without a sort key per job, and each job's "behind N jobs of users
with less recent usage" count.

The order (`order.fair_keys`): effective priority (higher first), then jobs waited longer
than `max_wait_hours` (FIFO), then the user's usage / weight (lower first), then FIFO. When
every job has the same base priority, a job's band (effective priority, overdue or not) only
depends on how long it waited, so over the FIFO queue it never decreases: each band is a
contiguous stretch, found by binary search with the same formula. Within a band that is not
overdue, the jobs are grouped by their user's usage key (a user's jobs share it and stay
FIFO), the groups taken in usage order: one sort of the distinct usages, not of 100k keys.
Mixed priorities fall back to sorting `fair_keys`.

The count (`Pass._less_usage_ahead`, one job at a time): within a band, the jobs ahead whose
usage key is lower, i.e. from the band's start to the first job with this job's key. A
`Run` is a band's stretch of the order, and its groups (`starts`, `shares`) the stretches of
one usage key."""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import Final, NamedTuple

from events.domain.scheduling.keys import (
    FairKey,
    fair_keys,
    fifo_sorted,
    is_fifo,
    usage_key,
)
from events.domain.scheduling.model import MAX_PRIORITY, Job, Policy

_USER: Final = operator.attrgetter("user_id")
_PRIORITY: Final = operator.attrgetter("priority")

Band = tuple[int, int, int, float]  # (band, its first index, first index of the key, key)


class Run(NamedTuple):
    """A stretch of the order in one band: `start` (index), `band` (effective priority),
    `late` (overdue: no usage groups), the first index of each usage group and its key."""

    start: int
    band: int
    late: bool
    starts: list[int]
    shares: list[float]


class FairOrder(NamedTuple):
    """The fair-share order (`jobs`), its bands (`runs`) and each job's count of jobs ahead
    of it in its band with less usage (`aheads`, aligned with `jobs`; 0 for an overdue job)."""

    jobs: list[Job]
    runs: list[Run]
    aheads: list[int]

    def band_at(self, index: int) -> Band | None:
        """`Pass._band` after the job at `index` (0-based): None for an overdue job."""
        runs = self.runs
        lo, hi = 0, len(runs)
        while hi - lo > 1:  # the last run starting at or before `index`
            mid = (lo + hi) // 2
            if runs[mid].start <= index:
                lo = mid
            else:
                hi = mid
        run = runs[lo]
        if run.late:
            return None
        group = bisect_right(run.starts, index) - 1
        return (run.band, run.start, run.starts[group], run.shares[group])


def band_key(job: Job, policy: Policy, now: datetime) -> tuple[int, int]:
    """(-effective priority, 0 if overdue else 1): `fair_keys`'s first two figures."""
    waited = (now - job.created_at).total_seconds()
    prio = job.priority
    if policy.aging_hours > 0:
        prio = min(MAX_PRIORITY, prio + int(max(0.0, waited) / 3600.0 // policy.aging_hours))
    late = policy.max_wait_hours > 0 and waited > policy.max_wait_hours * 3600
    return (-prio, 0 if late else 1)


def fair_order(
    queue: Sequence[Job], policy: Policy, now: datetime, usage: Mapping[str, float]
) -> FairOrder:
    """`queue` (any order) in the fair-share order, with its bands and counts."""
    if not queue:
        return FairOrder([], [], [])
    if len(set(map(_PRIORITY, queue))) != 1:
        keys = fair_keys(queue, policy, now, usage)
        index = sorted(range(len(keys)), key=keys.__getitem__)
        return keyed_order([queue[i] for i in index], [keys[i] for i in index])
    fifo = list(queue) if is_fifo(queue) else fifo_sorted(queue)
    jobs: list[Job] = []
    aheads: list[int] = []
    runs: list[Run] = []
    shares: dict[str, float] = {}
    n = len(fifo)
    start = 0
    while start < n:
        neg_prio, not_late = key = band_key(fifo[start], policy, now)
        end = bisect_right(fifo, key, lo=start, key=lambda j: band_key(j, policy, now))
        stretch = fifo[start:end]
        if not not_late:
            runs.append(Run(start, -neg_prio, True, [], []))
            jobs.extend(stretch)
            aheads.extend(repeat(0, len(stretch)))
        else:
            runs.append(_by_usage(stretch, start, -neg_prio, shares, policy, usage, jobs, aheads))
        start = end
    return FairOrder(jobs, runs, aheads)


def _by_usage(
    stretch: list[Job],
    start: int,
    band: int,
    shares: dict[str, float],
    policy: Policy,
    usage: Mapping[str, float],
    jobs: list[Job],
    aheads: list[int],
) -> Run:
    """A band's jobs (FIFO) grouped by usage key, appended to `jobs` and `aheads`."""
    users = list(map(_USER, stretch))
    groups: dict[float, list[Job]] = {}
    group_of: dict[str, list[Job]] = {}
    for user in set(users):
        share = shares.get(user)
        if share is None:
            share = shares[user] = usage_key(user, usage, policy)
        group_of[user] = groups.setdefault(share, [])
    deque(map(list.append, map(group_of.__getitem__, users), stretch), maxlen=0)
    starts: list[int] = []
    keys: list[float] = []
    at = start
    for share in sorted(groups):
        group = groups[share]
        starts.append(at)
        keys.append(share)
        jobs.extend(group)
        aheads.extend(repeat(at - start, len(group)))
        at += len(group)
    return Run(start, band, False, starts, keys)


def keyed_order(jobs: list[Job], keys: Sequence[FairKey]) -> FairOrder:
    """The bands and counts of `jobs` (any order) from their `fair_keys`, as
    `Pass._less_usage_ahead` finds them one job after the other: a band starts where the
    effective priority or overdue changes, a usage group where the usage key changes."""
    runs: list[Run] = []
    aheads: list[int] = []
    prev: tuple[int, int] | None = None
    share_prev = 0.0
    run: Run | None = None
    for n, key in enumerate(keys):
        band = (key[0], key[1])
        if band != prev:
            prev = band
            run = Run(n, -key[0], not key[1], [], [])
            runs.append(run)
            if key[1]:
                run.starts.append(n)
                run.shares.append(key[2])
                share_prev = key[2]
        assert run is not None
        if run.late:
            aheads.append(0)
            continue
        if key[2] != share_prev:
            share_prev = key[2]
            run.starts.append(n)
            run.shares.append(key[2])
        aheads.append(run.starts[-1] - run.start)
    return FairOrder(jobs, runs, aheads)
