"""A pass over its whole order (`Pass.plan`), without `Pass.step`'s work for the jobs whose
entry cannot change the pass (most of a long queue): their reason is looked up by their
figures (`settle.Settled`); any other job goes through `Pass._step`.

Once `FREEZE_AFTER` jobs in a row changed nothing, the walk checks whether any job left can
change the pass (`freeze.frozen`, from a few figures of the rest of the queue); if none can,
the walk ends there: the rest are explained from a copy of the pass as it is (`freeze.Tail`,
read by `explain.Explained`), each by the reason `Pass.step` would give it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import TYPE_CHECKING

from events.domain.scheduling.explain import Reason, Suffixed
from events.domain.scheduling.freeze import Figures, Tail, frozen, may_be_frozen, snapshot
from events.domain.scheduling.model import Admission, Job
from events.domain.scheduling.settle import Settled

if TYPE_CHECKING:
    from events.domain.scheduling.passes import Pass

# jobs in a row that changed nothing before a check (cheap but for the first `Figures`)
FREEZE_AFTER = 128


def walk(
    pass_: Pass,
    ordered: Sequence[Job],
    ahead: Callable[[int], int] | None,
    add_admit: Callable[[Admission], None],
    explain: bool,
    *,
    after: int | None = None,
) -> tuple[list[Reason], Tail | None, int]:
    """Each job of `ordered` in turn from the pass's state (without `explain`: until the pass
    is exhausted); `ahead`: a job's fair-share count by its index (`FairOrder.ahead`), if known.
    Returns the reason per job walked one at a time (with `explain`; None for an
    admission, `Suffixed` for a fair-share count to append), the `Tail` the rest of the
    order is explained by (with `explain`, if frozen) and the number of jobs walked."""
    after = FREEZE_AFTER if after is None else after
    return _Walk(pass_, ahead, add_admit, explain, after).run(ordered)


class _Walk:
    def __init__(
        self,
        pass_: Pass,
        ahead: Callable[[int], int] | None,
        add_admit: Callable[[Admission], None],
        explain: bool,
        after: int,
    ) -> None:
        self.pass_ = pass_
        self.ahead = ahead
        self.add_admit = add_admit
        self.explain = explain
        self.after = after
        self.tail: Tail | None = None
        self.checked = -1  # the pass's version `frozen` said no for
        self.figures: Figures | None = None
        self.settled = Settled(pass_)
        self.out: list[Reason] = []
        self.start = pass_.position

    def run(self, ordered: Sequence[Job]) -> tuple[list[Reason], Tail | None, int]:
        if not isinstance(ordered, list):  # (an iterator, say): one job after the other
            walked, _ = self._loop(ordered, 0, -1)
        else:
            walked, n = 0, len(ordered)
            while walked < n:
                walked, stopped = self._loop(islice(ordered, walked, None), walked, self.after)
                if stopped or walked >= n:
                    break
                if self._frozen(ordered, walked):
                    if self.explain:
                        figures = self.figures
                        estimates = figures is None or figures.estimates
                        self.tail = Tail(walked, snapshot(self.pass_), self.settled, estimates)
                    walked = n
                    break
        self.pass_.position = self.start + walked
        return self.out, self.tail, walked

    def _frozen(self, ordered: list[Job], first: int) -> bool:
        """`frozen` for the jobs from `first`, read at most once per state of the pass."""
        pass_ = self.pass_
        if pass_.version == self.checked or not may_be_frozen(pass_):
            return False
        self.checked = pass_.version
        if self.figures is None:
            self.figures = Figures(ordered[first:])
        return frozen(pass_, self.figures)

    def _loop(self, jobs: Iterable[Job], first: int, limit: int) -> tuple[int, bool]:
        """Walk `jobs` (from index `first`) until they end, the pass stops (without
        `explain`: exhausted) or `limit` jobs in a row changed nothing (-1: no limit).
        Returns the index after the last job walked and whether the pass stopped."""
        pass_ = self.pass_
        settled = self.settled
        memo_get, key_of, lookup = settled.memo.get, settled.key, settled.lookup
        add, explain, ahead, start = self.out.append, self.explain, self.ahead, self.start
        version = pass_.version
        done = pass_.exhausted()
        quiet = 0
        n = first - 1
        for n, job in enumerate(jobs, first):  # (n: after the loop too)
            key = key_of(job)
            found = memo_get(key)
            if found is None:
                found = lookup(job, key)
            kind = found.__class__
            if kind is tuple:  # fits now, wider than the reservation's spare GPUs
                found = settled.unless_ends_before(job, found)  # type: ignore[arg-type]
                kind = found.__class__
            if kind is str or kind is Suffixed:
                if explain:
                    add(found)  # type: ignore[arg-type]  # a str or a Suffixed
                elif done:
                    return n + 1, True
                quiet += 1
                if quiet == limit:
                    return n + 1, False
                continue
            pass_.position = start + n
            entry = pass_._step(job, None if ahead is None else ahead(n))
            if pass_.version != version:
                version = pass_.version
                settled.invalidate(job)
                done = pass_.exhausted()
                quiet = 0
            if type(entry) is Admission:
                self.add_admit(entry)
                if explain:
                    add(None)
            elif explain:
                add(entry.reason)  # type: ignore[union-attr]  # a Pending
            elif done:
                return n + 1, True
        return n + 1, False
