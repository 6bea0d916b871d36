"""A pass's explanations, decided in the pass and built into `Pending`s when read.

A pass over a long queue gives most jobs one of a few reasons (the same cap, "behind job",
"needs N GPUs" text): it records, per job of its order, that shared text (or None for an
admission), and under fair share a `Suffixed` base for the reasons that end in "behind N
jobs of users with less recent usage", N being the job's count in `FairOrder.aheads`.
`Explained` is the pass's `Plan.pending`: a sequence of `Pending` (position = index in the
order + 1) built on first read, equal to the list of them."""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import compress
from typing import Any, Final, TypeVar, cast, overload

from events.domain.scheduling import reasons as texts
from events.domain.scheduling.model import Job, Pending


class Suffixed:
    """A reason's base text, to be followed by the job's "behind N jobs ..." count."""

    __slots__ = ("base",)

    def __init__(self, base: str) -> None:
        self.base = base


Reason = str | Suffixed | None  # None: admitted
T = TypeVar("T")
_IS_REASON: Final = partial(operator.is_not, None)


def _finished(reasons: list[Reason], aheads: Sequence[int]) -> list[Reason]:
    """`reasons` as read: each `Suffixed` followed by its job's "behind N jobs ..." count
    (`reasons.less_usage`: the base, then the count's text), at C speed: a base per distinct
    reason, a count's text per distinct count, one concatenation per job (None: "")."""
    distinct = set(reasons)
    base_of = {r: r.base if type(r) is Suffixed else r or "" for r in distinct}
    suffixed = map({r: type(r) is Suffixed for r in distinct}.__getitem__, reasons)
    no_count: defaultdict[int, str] = defaultdict(str)  # (not Suffixed: nothing appended)
    counts = (no_count, {a: texts.less_usage("", a) for a in set(aheads)})
    appended = map(operator.getitem, map(counts.__getitem__, suffixed), aheads)
    return list(map(operator.add, map(base_of.__getitem__, reasons), appended))


class _ListLike(Sequence[T]):
    """A sequence built when first read (`_list`), and equal, printed and pickled as that
    list: what `Plan.pending` and `Plan.order` are."""

    __slots__ = ()

    def _list(self) -> list[T]:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self._list()[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _ListLike):
            return self._list() == other._list()
        if isinstance(other, list):
            return self._list() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-like, as a list

    def __repr__(self) -> str:
        return repr(self._list())

    def __reduce__(self) -> tuple[Any, ...]:  # pickled / copied as the list it stands for
        return (list, (self._list(),))


class Explained(_ListLike[Pending]):
    """The `Pending` of every job of `jobs` whose reason is not None, its position
    `start` + index + 1; `aheads()` (aligned with `jobs`) completes the `Suffixed` ones.
    `reasons` are the first jobs' (aligned with `jobs`); `tail` gives the others' (a frozen
    pass's: `freeze.Tail.reasons`), none of them admitted."""

    __slots__ = ("_aheads", "_built", "_jobs", "_read", "_reasons", "_start", "_tail")

    def __init__(
        self,
        jobs: Sequence[Job],
        reasons: list[Reason],
        aheads: Callable[[], Sequence[int]] | None,
        start: int,
        tail: Callable[[Sequence[Job]], list[Reason]] | None = None,
    ) -> None:
        self._jobs = jobs
        self._reasons = reasons
        self._aheads = aheads
        self._start = start
        self._tail = tail
        self._built: list[Pending] | None = None
        self._read: tuple[list[Job], list[int], list[str]] | None = None

    def _list(self) -> list[Pending]:
        built = self._built
        if built is None:
            built = self._built = self._build()
        return built

    def _build(self) -> list[Pending]:
        return list(map(Pending, *self._columns()))

    def _columns(self) -> tuple[list[Job], list[int], list[str]]:
        """The pending jobs, their positions and reasons (as read), aligned."""
        columns = self._read
        if columns is None:
            reasons = self._reasons
            if self._tail is not None:
                reasons = [*reasons, *self._tail(self._jobs[len(reasons) :])]
            jobs = self._jobs if len(reasons) == len(self._jobs) else self._jobs[: len(reasons)]
            positions = range(self._start + 1, self._start + 1 + len(reasons))
            kept = list(map(_IS_REASON, reasons))
            if self._aheads is not None:
                reasons = _finished(reasons, self._aheads())
            texts_ = cast(Iterator[str], compress(reasons, kept))  # str now: none is Suffixed
            columns = self._read = (
                list(compress(jobs, kept)),
                list(compress(positions, kept)),
                list(texts_),
            )
        return columns

    def placements(self) -> Iterator[tuple[str, tuple[int, str]]]:
        """(job id, (position, reason)) of each, in order, without building the `Pending`s."""
        jobs, positions, reasons = self._columns()
        return zip(map(_JOB_ID, jobs), zip(positions, reasons, strict=True), strict=True)

    def __len__(self) -> int:
        if self._built is None:
            walked = len(self._jobs) if self._tail is not None else len(self._reasons)
            return walked - self._reasons.count(None)
        return len(self._built)


_JOB_ID: Final = operator.attrgetter("job_id")


class Ids(_ListLike[str]):
    """`Plan.order`: the id of each of `jobs`, listed when first read (equal to the list)."""

    __slots__ = ("_built", "_jobs")

    def __init__(self, jobs: Sequence[Job]) -> None:
        self._jobs = jobs
        self._built: list[str] | None = None

    def _list(self) -> list[str]:
        if self._built is None:
            self._built = list(map(_JOB_ID, self._jobs))
        return self._built

    def __len__(self) -> int:
        return len(self._jobs)


def pending_placements(pending: Sequence[Pending]) -> Iterator[tuple[str, tuple[int, str]]]:
    """(job id, (position, reason)) of each of a plan's `pending`, in order (an `Explained`:
    without building its `Pending`s)."""
    if isinstance(pending, Explained):
        return pending.placements()
    return ((p.job.job_id, (p.queue_position, p.reason)) for p in pending)
