"""A pass over its whole order (`Pass.plan`), without `Pass.step`'s work for the jobs whose
entry cannot change the pass (most of a long queue).

Such a job's reason depends only on its user's slot in its class (held or not), its GPU
type and count, and (a job that fits now but not in the reservation's spare GPUs) whether
its estimate ends before the reservation: memoized per (user, GPUs, type) until the pass
changes (`Pass.version`). Any other job goes through `Pass._step`."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from events.domain.scheduling import reasons
from events.domain.scheduling.estimate import by_shape
from events.domain.scheduling.explain import Reason, Suffixed
from events.domain.scheduling.model import Admission, Job, Reservation, SizeClass

if TYPE_CHECKING:
    from events.domain.scheduling.passes import Pass

_STEP: Final[object] = object()  # the job may change the pass: step it
_DEFAULT: Final[Any] = object()  # no per-user cap: the class's default

# per (user, GPUs, type[, kind, max runtime]): a settled reason, or (the reservation's time,
# the reason unless it ends before), or _STEP
Memo = dict[tuple[Any, ...], "str | Suffixed | tuple[datetime, Reason] | object"]
_SHAPE: Final = ("user_id", "gpu_count", "gpu_type")
_SHAPE_AND_RUNTIME: Final = (*_SHAPE, "kind", "max_runtime_minutes")


def walk(
    pass_: Pass,
    ordered: Sequence[Job],
    aheads: Sequence[int] | None,
    add_admit: Callable[[Admission], None],
    explain: bool,
) -> tuple[list[Reason], int]:
    """Each job of `ordered` in turn from the pass's state (without `explain`: until the pass
    is exhausted); `aheads`: their fair-share counts (`FairOrder.aheads`), if known.
    Returns the reason per job walked (with `explain`; None for an admission, `Suffixed`
    for a fair-share count to append) and the number of jobs walked."""
    out: list[Reason] = []
    add = out.append
    memo: Memo = {}
    resolve = _Resolver(pass_)
    version = pass_.version
    done = pass_.exhausted()
    start = pass_.position
    n = -1
    for n, memoized in enumerate(map(memo.get, resolve.keys(ordered))):  # (the memo as it is)
        found = memoized
        if found is None:
            found = memo[resolve.key(ordered[n])] = resolve(ordered[n])
        kind = found.__class__
        if kind is tuple:  # fits now, wider than the reservation's spare GPUs
            found = resolve.unless_ends_before(ordered[n], found)  # type: ignore[arg-type]
            kind = found.__class__
        if kind is str or kind is Suffixed:
            if explain:
                add(found)  # type: ignore[arg-type]  # a str or a Suffixed
            elif done:
                break
            continue
        job = ordered[n]
        pass_.position = start + n
        entry = pass_._step(job, None if aheads is None else aheads[n])
        if pass_.version != version:
            version = pass_.version
            memo.clear()
            resolve.clear()
            done = pass_.exhausted()
        if type(entry) is Admission:
            add_admit(entry)
            if explain:
                add(None)
        elif explain:
            add(entry.reason)  # type: ignore[union-attr]  # a Pending
        elif done:
            break
    walked = n + 1
    pass_.position = start + walked
    return out, walked


class _Resolver:
    """What `walk` memoizes for a job (see `Memo`), from the pass's state now."""

    def __init__(self, pass_: Pass) -> None:
        self.pass_ = pass_
        self.big = pass_.limits.big_job_gpus
        self.user_caps = pass_.limits.user_caps
        self.class_caps = pass_._class_caps
        # with an estimate of the job's figures only (`by_shape`), the memo keeps the
        # figures it depends on and whether the job ends before the reservation with them
        self.shaped = pass_._easy and by_shape(pass_.estimate)
        fields = _SHAPE_AND_RUNTIME if self.shaped else _SHAPE
        self.key = operator.attrgetter(*fields)
        self._fields = [operator.attrgetter(f) for f in fields]
        self.by_type: dict[tuple[str, int], str | Reservation | None] = {}
        self.suffixed: dict[str, Suffixed] = {}
        self.ends_after: dict[float, bool] = {}  # estimate (s) -> ends after the reservation

    def keys(self, ordered: Sequence[Job]) -> Iterator[tuple[Any, ...]]:
        """`key` of each job of `ordered` (at C speed)."""
        return zip(*(map(field, ordered) for field in self._fields), strict=True)

    def clear(self) -> None:
        self.by_type.clear()
        self.ends_after.clear()

    def unless_ends_before(self, job: Job, waiting: tuple[datetime, Reason]) -> Reason | object:
        """A job that fits now but not in the reservation's spare GPUs (its estimate not
        memoized by its figures): `waiting`'s reason unless it ends before (then _STEP)."""
        at, text = waiting
        seconds = self.pass_.estimate(job)
        after = self.ends_after.get(seconds)
        if after is None:
            after = self.ends_after[seconds] = self.pass_._end_of(seconds) > at
        return text if after else _STEP

    def _wrap(self, text: str) -> Reason:
        """`text`, followed under fair share by the job's "behind N jobs ..." count."""
        if not self.pass_._fair:
            return text
        wrapped = self.suffixed.get(text)
        if wrapped is None:
            wrapped = self.suffixed[text] = Suffixed(text)
        return wrapped

    def __call__(self, job: Job) -> str | Suffixed | tuple[datetime, Reason] | object:
        pass_ = self.pass_
        big = self.big
        gpus = job.gpu_count
        size_class: SizeClass = "big" if big and gpus >= big else "small"
        key = (job.user_id, size_class)
        cap = self.user_caps.get(key, _DEFAULT) if self.user_caps else _DEFAULT
        cap = self.class_caps[size_class] if cap is _DEFAULT else cap
        if cap is not None and pass_.slots.get(key, 0) >= cap:
            return pass_._cap_text(cap, pass_.progress.get(key, 0), size_class)
        if pass_.paused:
            return reasons.PAUSED_REASON
        kind = (job.gpu_type, gpus)
        found: str | Reservation | None = self.by_type.get(kind, _DEFAULT)
        if found is _DEFAULT:
            found = self.by_type[kind] = settled_reason(pass_, job.gpu_type, gpus, size_class)
        if found is None:
            return _STEP
        if isinstance(found, Reservation):
            text = self._wrap(pass_._waiting(found))
            if not self.shaped:
                return (found.at, text)
            return text if pass_._end_of(pass_.estimate(job)) > found.at else _STEP
        return self._wrap(found)


def settled_reason(
    pass_: Pass, gpu_type: str, gpus: int, size_class: SizeClass
) -> str | Reservation | None:
    """The reason `step` gives a job of this type and size that its user's slot does not
    hold, when that step changes nothing (fair share: before its usage suffix); None
    when it may change the pass (stop or reserve the type, admit); the type's reservation
    when the job fits now but not in its spare GPUs (it waits unless it ends before)."""
    blocker = pass_.stopped.get(gpu_type)
    if blocker is not None:
        return pass_._behind_text(gpu_type, blocker)
    free = pass_.budget.get(gpu_type, 0)
    reserve = pass_.limits.big_job_reserve if size_class == "big" else 0
    if size_class == "big" and free - gpus < reserve:
        base = reasons.big_reserve(gpus, free, reserve)
    elif gpus > free:
        base = reasons.no_fit(gpus, free)
        if pass_._strict:
            return None
    else:
        current = pass_.reservations.get(gpu_type)
        if current is not None and gpus > pass_.spare[gpu_type]:
            return current
        return None
    if not pass_._easy:
        return base
    current = pass_.reservations.get(gpu_type)
    if current is None:
        return None
    return f"{base}; {pass_._waiting(current)}"
