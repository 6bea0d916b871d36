"""What `Pass.step` would give a job without changing the pass, memoized by the job's
figures: the pass's walk (`walk`) looks it up instead of stepping most jobs of a long queue.

A job's reason then depends only on its user's slot in its class (held or not), its GPU type
and count, and (a job that fits now but not in the reservation's spare GPUs) whether its
estimate ends before the reservation. The memo key is (user, GPUs, type), with the kind and
`max_runtime_minutes` when the estimate depends on nothing else (`estimate.by_shape`).

A held slot stays held for the rest of the pass (slots only fill up): such entries are kept
for good. Every other entry depends on the job's GPU type and its user's slot in its class:
a pass changes one type and one slot at a time (`Pass.version`: the job it stepped), and
`Settled.invalidate` drops just the entries of those."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from events.domain.scheduling import reasons
from events.domain.scheduling.estimate import by_shape
from events.domain.scheduling.explain import Reason, Suffixed
from events.domain.scheduling.model import Job, Reservation, SizeClass

if TYPE_CHECKING:
    from events.domain.scheduling.passes import Pass

STEP: Final[object] = object()  # the job may change the pass: step it
_DEFAULT: Final[Any] = object()  # no per-user cap: the class's default

# a settled reason; or (the reservation's time, the reason unless the job ends before it);
# or STEP
Entry = str | Suffixed | tuple[datetime, Reason] | object
Key = tuple[Any, ...]
_SHAPE: Final = ("user_id", "gpu_count", "gpu_type")
_SHAPE_AND_RUNTIME: Final = (*_SHAPE, "kind", "max_runtime_minutes")


class Settled:
    """The memo (`memo`: key -> `Entry`) of one pass's walk; `unsettled`: its keys whose
    entry is not a reason (STEP, or depends on each job's estimate)."""

    def __init__(self, pass_: Pass, *, estimates: bool = True) -> None:
        """`estimates`: False when no job looked up can fit now under a reservation (its
        entry never depends on its estimate: the key leaves out kind and max runtime)."""
        self.pass_ = pass_
        self.big = pass_.limits.big_job_gpus
        self.user_caps = pass_.limits.user_caps
        self.class_caps = pass_._class_caps
        self.shaped = estimates and pass_._easy and by_shape(pass_.estimate)
        fields = _SHAPE_AND_RUNTIME if self.shaped else _SHAPE
        self.key = operator.attrgetter(*fields)
        self.memo: dict[Key, Entry] = {}
        self.unsettled: set[Key] = set()
        self._by_type: dict[tuple[str, int], str | Reservation | None] = {}
        self._suffixed: dict[str, Suffixed] = {}
        self._of_type: dict[str, list[Key]] = {}  # entries that depend on the type
        self._of_slot: dict[tuple[str, str], list[Key]] = {}  # ... and on the user's slot

    def keys(self, jobs: Sequence[Job]) -> Iterator[Key]:
        """`key` of each of `jobs` (at C speed)."""
        return map(self.key, jobs)

    def lookup(self, job: Job, key: Key) -> Entry:
        """Memoize `job`'s entry (under its `key`)."""
        entry, slot = self.entry(job)
        self.memo[key] = entry
        if slot is not None:
            self._of_type.setdefault(job.gpu_type, []).append(key)
            self._of_slot.setdefault(slot, []).append(key)
        kind = entry.__class__
        if kind is not str and kind is not Suffixed:
            self.unsettled.add(key)
        return entry

    def invalidate(self, job: Job) -> None:
        """The pass changed by stepping `job`: drop the entries of its type and slot."""
        big = self.big
        slot = (job.user_id, "big" if big and job.gpu_count >= big else "small")
        memo, unsettled = self.memo, self.unsettled
        for key in (*self._of_type.pop(job.gpu_type, ()), *self._of_slot.pop(slot, ())):
            memo.pop(key, None)
            unsettled.discard(key)
        for kind in [k for k in self._by_type if k[0] == job.gpu_type]:
            del self._by_type[kind]

    def unless_ends_before(self, job: Job, waiting: tuple[datetime, Reason]) -> Entry:
        """A job that fits now but not in the reservation's spare GPUs (its estimate not
        memoized by its figures): `waiting`'s reason unless it ends before (then STEP)."""
        at, text = waiting
        pass_ = self.pass_
        return text if pass_._end_of(pass_.estimate(job)) > at else STEP

    def _wrap(self, text: str) -> Reason:
        """`text`, followed under fair share by the job's "behind N jobs ..." count."""
        if not self.pass_._fair:
            return text
        wrapped = self._suffixed.get(text)
        if wrapped is None:
            wrapped = self._suffixed[text] = Suffixed(text)
        return wrapped

    def entry(self, job: Job) -> tuple[Entry, tuple[str, str] | None]:
        """The job's entry, and its slot if the entry depends on the pass's state (None: it
        is its held slot's reason, or the pass is paused: for good)."""
        pass_ = self.pass_
        big = self.big
        gpus = job.gpu_count
        size_class: SizeClass = "big" if big and gpus >= big else "small"
        slot = (job.user_id, size_class)
        cap = self.user_caps.get(slot, _DEFAULT) if self.user_caps else _DEFAULT
        cap = self.class_caps[size_class] if cap is _DEFAULT else cap
        if cap is not None and pass_.slots.get(slot, 0) >= cap:
            return pass_._cap_text(cap, pass_.progress.get(slot, 0), size_class), None
        if pass_.paused:
            return reasons.PAUSED_REASON, None
        kind = (job.gpu_type, gpus)
        found: str | Reservation | None = self._by_type.get(kind, _DEFAULT)
        if found is _DEFAULT:
            found = self._by_type[kind] = settled_reason(pass_, job.gpu_type, gpus, size_class)
        if found is None:
            return STEP, slot
        if isinstance(found, Reservation):
            text = self._wrap(pass_._waiting(found))
            if not self.shaped:
                return (found.at, text), slot
            return (text if pass_._end_of(pass_.estimate(job)) > found.at else STEP), slot
        return self._wrap(found), slot


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
