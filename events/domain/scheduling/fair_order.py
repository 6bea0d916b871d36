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


class FairOrder:
    """The fair-share order (`jobs`) and its bands (`runs`, covering `jobs`): each job's
    count of jobs ahead of it in its band with less usage is `ahead(index)`, or all of them
    at once `aheads` (aligned with `jobs`; 0 for an overdue job; built when first read)."""

    def __init__(self, jobs: list[Job], runs: list[Run]) -> None:
        self.jobs = jobs
        self.runs = runs
        self._aheads: list[int] | None = None

    @property
    def aheads(self) -> list[int]:
        if self._aheads is None:
            out: list[int] = []
            ends = [run.start for run in self.runs[1:]] + [len(self.jobs)] if self.runs else []
            for run, end in zip(self.runs, ends, strict=True):
                if run.late:
                    out.extend(repeat(0, end - run.start))
                    continue
                for first, last in zip(run.starts, [*run.starts[1:], end], strict=True):
                    out.extend(repeat(first - run.start, last - first))
            self._aheads = out
        return self._aheads

    def get_aheads(self) -> list[int]:
        return self.aheads

    def ahead(self, index: int) -> int:
        band = self.band_at(index)
        return 0 if band is None else band[2] - band[1]

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
        return FairOrder([], [])
    if len(set(map(_PRIORITY, queue))) != 1:
        keys = fair_keys(queue, policy, now, usage)
        index = sorted(range(len(keys)), key=keys.__getitem__)
        return keyed_order([queue[i] for i in index], [keys[i] for i in index])
    if is_fifo(queue):
        fifo = queue if isinstance(queue, list) else list(queue)
    else:
        fifo = fifo_sorted(queue)
    jobs: list[Job] = []
    runs: list[Run] = []
    users = list(map(_USER, fifo))
    shares = _shares(set(users), policy, usage)
    n = len(fifo)
    start = 0
    while start < n:
        neg_prio, not_late = key = band_key(fifo[start], policy, now)
        end = bisect_right(fifo, key, lo=start, key=lambda j: band_key(j, policy, now))
        stretch = fifo[start:end]
        if not not_late:
            runs.append(Run(start, -neg_prio, True, [], []))
            jobs.extend(stretch)
        else:
            runs.append(_by_usage(stretch, users[start:end], start, -neg_prio, shares, jobs))
        start = end
    return FairOrder(jobs, runs)


def _shares(users: set[str], policy: Policy, usage: Mapping[str, float]) -> dict[str, float]:
    """`usage_key` of each of `users` (without weights: at C speed, the same figures)."""
    if policy.weights:
        return {user: usage_key(user, usage, policy) for user in users}
    used = map(usage.get, users, repeat(0.0))
    return dict(zip(users, map(operator.truediv, used, repeat(1.0)), strict=True))


def _by_usage(
    stretch: list[Job],
    users: list[str],
    start: int,
    band: int,
    shares: dict[str, float],
    jobs: list[Job],
) -> Run:
    """A band's jobs (FIFO; `users`: theirs) grouped by usage key, appended to `jobs`;
    `shares`: the usage key of every user of the queue."""
    groups: dict[float, list[Job]] = {}
    group_of = {user: groups.setdefault(share, []) for user, share in shares.items()}
    deque(map(list.append, map(group_of.__getitem__, users), stretch), maxlen=0)
    starts: list[int] = []
    keys = [share for share in sorted(groups) if groups[share]]  # (users of other bands)
    at = start
    for share in keys:
        group = groups[share]
        starts.append(at)
        at += len(group)
        jobs += group  # (a list's extend by a list: a copy, no iteration)
    return Run(start, band, False, starts, keys)


def keyed_order(jobs: list[Job], keys: Sequence[FairKey]) -> FairOrder:
    """The bands and counts of `jobs` (any order) from their `fair_keys`, as
    `Pass._less_usage_ahead` finds them one job after the other: a band starts where the
    effective priority or overdue changes, a usage group where the usage key changes."""
    runs: list[Run] = []
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
        if not run.late and key[2] != share_prev:
            share_prev = key[2]
            run.starts.append(n)
            run.shares.append(key[2])
    return FairOrder(jobs, runs)
