"""When no job left in a pass's order can change it, and how those jobs are explained.

A job changes a pass when `Pass.step` admits it, stops its GPU type (strict FIFO) or
reserves GPUs for it. A job whose slot is held changes nothing, so whether the rest of the
queue can is a matter of its GPU types, its smallest GPU count and (a job that fits now but
not in the reservation's spare GPUs) its shortest possible estimate: `frozen` reads those
few figures, never a job's reason. Then each job left gets the reason `step` would give it
from the pass as it is: `Tail` keeps a copy of it (the pass itself may step on: a job
placed after the plan) and gives those reasons when they are read."""

from __future__ import annotations

import copy
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from events.domain.scheduling.estimate import least_estimate
from events.domain.scheduling.explain import Reason, Suffixed
from events.domain.scheduling.model import Job
from events.domain.scheduling.settle import Settled

if TYPE_CHECKING:
    from events.domain.scheduling.passes import Pass

_TYPE: Final = operator.attrgetter("gpu_type")
_GPUS: Final = operator.attrgetter("gpu_count")
_MAX_RUNTIME: Final = operator.attrgetter("max_runtime_minutes")


def may_be_frozen(pass_: Pass) -> bool:
    """A cheap first look (the pass's figures only) before `frozen` reads the queue: False
    when a GPU type with GPUs free is open to a 1-GPU job (not stopped, or no reservation
    under reserve and fair share), or any type is open to the job that would stop or
    reserve it; the queue left most likely has jobs of it."""
    if pass_.paused:
        return True
    for gpu_type, free in pass_.budget.items():
        if gpu_type in pass_.stopped:
            continue
        if pass_._strict:
            return False
        if pass_._easy and gpu_type not in pass_.reservations:
            return False
        if not pass_._easy and free > 0:
            return False
    return True


class Figures:
    """What `frozen` reads of the queue left: its GPU types, its fewest GPUs and its lowest
    `max_runtime_minutes`. Read once from the jobs left at the first check, they hold for
    every later check (fewer jobs left: a subset of the types, no fewer GPUs)."""

    def __init__(self, rest: Sequence[Job]) -> None:
        self.rest = rest
        self.types = set(map(_TYPE, rest))
        self._fewest: int | None = None
        self._capped: list[int | None] | None = None
        self.estimates = False  # whether `frozen` read the shortest estimate

    @property
    def fewest(self) -> int:
        """The fewest GPUs of a job left (read when first needed: strict FIFO never does)."""
        if self._fewest is None:
            self._fewest = min(map(_GPUS, self.rest), default=0)
        return self._fewest

    def least(self, pass_: Pass) -> float | None:
        """No job left's estimate is shorter (None: the estimate does not say)."""
        least = least_estimate(pass_.estimate)
        if least is None:
            return None
        if self._capped is None:
            runtimes = set(map(_MAX_RUNTIME, self.rest))  # (few distinct: None, mostly)
            runtimes.discard(None)
            self._capped = [min(runtimes, default=None)]
        capped = self._capped[0]
        return least if capped is None else min(least, capped * 60.0)


def frozen(pass_: Pass, figures: Figures) -> bool:
    """Whether no job left (`figures`) can change the pass (a sufficient condition): for
    each GPU type among them, its jobs all stop behind its blocker (strict FIFO); or none
    fits now (backfill; reserve and fair share: the type has its reservation, so they wait
    for it); or (reserve, fair share) those that fit now are wider than the reservation's
    spare GPUs and even the shortest estimate would end after it."""
    if pass_.paused or not figures.types:
        return True
    for gpu_type in figures.types:
        if gpu_type in pass_.stopped:
            continue
        if pass_._strict:  # (a job that does not fit would stop the type)
            return False
        free = pass_.budget.get(gpu_type, 0)
        if not pass_._easy:
            if figures.fewest > free:
                continue
            return False
        reservation = pass_.reservations.get(gpu_type)
        if reservation is None:  # (a job that does not fit would reserve)
            return False
        if figures.fewest > free:
            continue
        if figures.fewest <= pass_.spare[gpu_type]:
            return False
        figures.estimates = True  # (the jobs' reasons depend on their estimates)
        least = figures.least(pass_)
        if least is None or not pass_._end_of(least) > reservation.at:
            return False
    return True


def snapshot(pass_: Pass) -> Pass:
    """A copy of `pass_` that its later steps leave as it is now."""
    copied = copy.copy(pass_)
    copied.slots = dict(pass_.slots)
    copied.budget = dict(pass_.budget)
    copied.stopped = dict(pass_.stopped)
    copied.reservations = dict(pass_.reservations)
    copied.spare = dict(pass_.spare)
    return copied


class Tail:
    """The jobs of an order from index `start` on, in a frozen pass (`frozen`): `reason`
    gives each the reason `Pass.step` would (a `Suffixed` for a fair-share count)."""

    __slots__ = ("_settled", "start")

    def __init__(self, start: int, frozen_pass: Pass, memo: Settled, estimates: bool) -> None:
        """`memo`: the walk's, as of the frozen pass (its entries hold for the copy);
        `estimates`: whether the jobs left may fit now under a reservation (`frozen` read
        their shortest estimate; else a shorter key: `Settled`)."""
        self.start = start
        self._settled = Settled(frozen_pass, estimates=estimates)
        if self._settled.shaped == memo.shaped:
            self._settled.memo = dict(memo.memo)

    def reasons(self, jobs: Sequence[Job]) -> list[Reason]:
        """`reason` of each of `jobs` (the memo read at C speed)."""
        settled = self._settled
        memo = settled.memo
        keys = list(settled.keys(jobs))
        reps = dict(zip(keys, jobs, strict=True))  # a job per distinct key
        entry = settled.entry
        for key in reps.keys() - memo.keys():
            found = memo[key] = entry(reps[key])[0]
            if found.__class__ is not str and found.__class__ is not Suffixed:
                raise AssertionError(f"job {reps[key].job_id} can change a frozen pass")
        return list(map(memo.__getitem__, keys))  # type: ignore[arg-type]

    def reason(self, job: Job) -> Reason:
        settled = self._settled
        key = settled.key(job)
        found = settled.memo.get(key)
        if found is None:
            found = settled.lookup(job, key)
        if found.__class__ is not str and found.__class__ is not Suffixed:
            raise AssertionError(f"job {job.job_id} can change a frozen pass")
        return found  # type: ignore[return-value,unused-ignore]  # a str or a Suffixed
