"""One planning pass: walk the queue in the policy's order, admit what the rules allow.

Rules, under every policy: per-user caps per size class (counted across GPU types), the
big-job headroom reserve, the GPU budget of the job's own type. The policies differ in what a
job that does not fit does to the jobs of its type behind it:

- `strict-fifo`: stops them (a pass stops only the jobs of the type that does not fit). With
  classes on, a job held by its class cap, and a big job held by the big-job reserve (or not
  fitting at all), is *skipped*: it blocks nothing, so under the old service's rules a big job
  can wait without bound.
- `backfill`: nothing; later jobs that fit go ahead.
- `reserve` (EASY backfill) and `fair-share`: the first blocked job of a type gets a
  reservation (the earliest time, by the estimated ends of running jobs, that enough GPUs are
  free for it); a later job starts now only if it fits now and ends before that time or uses
  only GPUs the reservation leaves spare. The reserved job keeps its user's slot."""

from __future__ import annotations

import heapq
import operator
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from itertools import compress, repeat
from typing import Any, Final

from events.domain.scheduling import reasons
from events.domain.scheduling.estimate import ConstantEstimate
from events.domain.scheduling.explain import Explained, Ids
from events.domain.scheduling.fair_order import FairOrder, fair_order, keyed_order
from events.domain.scheduling.keys import fair_keys, usage_key
from events.domain.scheduling.model import (
    Admission,
    Job,
    Limits,
    Pending,
    Plan,
    Policy,
    Reservation,
    Running,
    SizeClass,
)
from events.domain.scheduling.order import policy_order
from events.domain.scheduling.walk import walk

Estimate = Callable[[Job], float]  # seconds a job is expected to run
_DEFAULT: Final[Any] = object()  # no per-user cap: the class's default
_JOB_ID: Final = operator.attrgetter("job_id")
_USER: Final = operator.attrgetter("user_id")
_GPUS: Final = operator.attrgetter("gpu_count")
_TYPE: Final = operator.attrgetter("gpu_type")
_END: Final = operator.attrgetter("expected_end")
_CLASSES: Final[tuple[SizeClass, SizeClass]] = ("small", "big")  # by gpus >= big_job_gpus


def constant_estimate(seconds: float = 7200.0) -> Estimate:
    """The same estimate for every job, capped by its `max_runtime_minutes`."""
    return ConstantEstimate(seconds)


class Pass:
    """The state of a pass after the jobs stepped so far. `step` takes the next job in the
    policy's order; a job submitted after a plan can be placed by one more `step`."""

    def __init__(
        self,
        running: Sequence[Running],
        headroom: Mapping[str, int],
        limits: Limits,
        policy: Policy,
        now: datetime,
        *,
        estimate: Estimate | None = None,
        usage: Mapping[str, float] | None = None,
        paused: bool = False,
    ) -> None:
        self.limits = limits
        self.policy = policy
        self.now = now
        self.paused = paused
        self.estimate = estimate or constant_estimate()
        self.usage = usage or {}
        self.budget: dict[str, int] = {t: max(0, n) for t, n in headroom.items()}
        self._easy = policy.reserves
        self.progress: dict[tuple[str, str], int] = {}
        self.ends: dict[str, list[tuple[datetime, int]]] = {}  # (reserve, fair-share only)
        big = limits.big_job_gpus
        # (at C speed: a pass over a long queue has thousands of running jobs too)
        classes: Iterator[str] = (
            map(_CLASSES.__getitem__, map(partial(operator.le, big), map(_GPUS, running)))
            if big
            else repeat("small")
        )
        self.progress.update(Counter(zip(map(_USER, running), classes, strict=False)))
        if self._easy:
            types = list(map(_TYPE, running))
            latest = map(max, map(_END, running), repeat(now))  # (max(expected_end, now))
            ends = list(zip(latest, map(_GPUS, running), strict=False))
            for gpu_type in set(types):
                self.ends[gpu_type] = list(compress(ends, map(gpu_type.__eq__, types)))
        self.slots = dict(self.progress)
        self.stopped: dict[str, str] = {}  # gpu type -> the strict blocker's job id
        self.reservations: dict[str, Reservation] = {}
        self.spare: dict[str, int] = {}
        self.admitted = 0
        self.position = 0
        self.version = 0  # bumped by every change a later job's entry may depend on
        self._strict = policy.name == "strict-fifo"
        self._fair = policy.name == "fair-share"
        self._class_caps = {"small": limits.cap_small, "big": limits.cap_big}
        self._classes_on = limits.big_job_gpus > 0
        self._cap_reasons: dict[tuple[str, str], str] = {}
        self._cap_texts: dict[tuple[int, int, str], str] = {}  # the same text, shared
        self._wait_reasons: dict[str, str] = {}  # gpu type -> "waiting for a reservation ..."
        self._ends_at: dict[float, datetime] = {}  # estimate (s) -> now + estimate
        self._behind: dict[str, str] = {}  # gpu type -> "behind job ..." (its strict blocker)
        self._exhausted: bool | None = None  # cached `exhausted()`; None: to be computed
        # fair share: (band, band's first position, first position of this usage key, usage key)
        self._band: tuple[int, int, int, float] | None = None

    def step(self, job: Job) -> Admission | Pending:
        return self._step(job, None)

    def _step(self, job: Job, ahead: int | None) -> Admission | Pending:
        """`step`, with the job's fair-share count (`_less_usage_ahead`) when the order
        computed it already."""
        self.position = position = self.position + 1
        limits = self.limits
        # (inlined: Limits.size_class and Limits.cap, on the hot path of a 100k-job pass)
        big = limits.big_job_gpus
        size_class: SizeClass = "big" if big and job.gpu_count >= big else "small"
        key = (job.user_id, size_class)
        held = self.slots.get(key, 0)
        cap = limits.user_caps.get(key, _DEFAULT)
        cap = self._class_caps[size_class] if cap is _DEFAULT else cap
        if ahead is None:
            ahead = self._less_usage_ahead(job, position) if self._fair else 0
        if cap is not None and held >= cap:
            return Pending(job, position, self._cap_reason(key, cap))
        if self.paused:
            return Pending(job, position, reasons.PAUSED_REASON)
        gpu_type = job.gpu_type
        blocker = self.stopped.get(gpu_type)
        if blocker is not None:
            return Pending(job, position, self._behind_text(gpu_type, blocker))
        free = self.budget.get(gpu_type, 0)
        gpus = job.gpu_count
        reserve = limits.big_job_reserve if size_class == "big" else 0
        if size_class == "big" and free - gpus < reserve:
            # (with reserve 0 too: as in the old service, a big job that does not fit is
            # skipped, never stopping a strict pass)
            base = reasons.big_reserve(gpus, free, reserve)
            if self._easy:
                return self._blocked(job, position, key, gpus + reserve, base, ahead)
            return Pending(job, position, base)  # skipped: blocks nothing
        if gpus > free:
            base = reasons.no_fit(gpus, free)
            if self._strict:
                self.stopped[gpu_type] = job.job_id
                self.version += 1
                self._exhausted = None
                return Pending(job, position, base)
            if self._easy:
                return self._blocked(job, position, key, gpus, base, ahead)
            return Pending(job, position, reasons.less_usage(base, ahead))
        reservation = self.reservations.get(gpu_type)
        spare_before: int | None = None
        estimate_s: float | None = None
        if reservation is not None:
            estimate_s = self.estimate(job)
            spare_before = self.spare[gpu_type]
            ends_before = self._end_of(estimate_s) <= reservation.at
            if not ends_before:
                if gpus > spare_before:
                    text = self._waiting(reservation)
                    return Pending(job, position, reasons.less_usage(text, ahead))
                self.spare[gpu_type] = spare_before - gpus
        elif self._easy:
            estimate_s = self.estimate(job)
        admission = Admission(
            job,
            position,
            free,
            size_class,
            cap,
            held,
            reservation=reservation,
            spare_before=spare_before,
            estimate_s=estimate_s,
            usage=usage_key(job.user_id, self.usage, self.policy) if self._fair else None,
            holders=tuple(r.job_id for r in self.reservations.values()),
        )
        self._take(admission, key)
        return admission

    def _take(self, admission: Admission, key: tuple[str, str]) -> None:
        """Count an admission against its type's GPUs, its user's slot and the ends."""
        job = admission.job
        self.budget[job.gpu_type] = admission.available_before - job.gpu_count
        self.version += 1
        self._exhausted = None
        self.slots[key] = admission.user_load + 1
        if self._easy:
            assert admission.estimate_s is not None
            ends = self.ends.setdefault(job.gpu_type, [])
            ends.append((self._end_of(admission.estimate_s), job.gpu_count))
        self.admitted += 1

    def _end_of(self, seconds: float) -> datetime:
        """`now` + `seconds` (a job's expected end), memoized: estimates repeat."""
        at = self._ends_at.get(seconds)
        if at is None:
            at = self._ends_at[seconds] = self.now + timedelta(seconds=seconds)
        return at

    def _blocked(
        self, job: Job, position: int, key: tuple[str, str], need: int, base: str, ahead: int
    ) -> Pending:
        """A job that cannot start now under `reserve`/`fair-share`: the first of its type
        gets the reservation and keeps its user's slot; the others wait behind it."""
        gpu_type = job.gpu_type
        current = self.reservations.get(gpu_type)
        if current is not None:
            text = self._waiting(current)
            return Pending(job, position, reasons.less_usage(f"{base}; {text}", ahead))
        found = self._reserve(job, need)
        if found is None:
            return Pending(job, position, reasons.never_fits(need, gpu_type))
        self.reservations[gpu_type] = found
        self.version += 1
        self.spare[gpu_type] = found.spare
        self.slots[key] = self.slots.get(key, 0) + 1
        return Pending(job, position, reasons.less_usage(reasons.reserved(base, found.at), ahead))

    def _waiting(self, reservation: Reservation) -> str:
        text = self._wait_reasons.get(reservation.gpu_type)
        if text is None:
            text = reasons.waiting_reservation(reservation.at, reservation.job_id)
            self._wait_reasons[reservation.gpu_type] = text
        return text

    def _reserve(self, job: Job, need: int) -> Reservation | None:
        """The first end (by the estimates) with enough GPUs free for `need`: the ends taken
        earliest first from a heap (the first few of thousands of running jobs, mostly)."""
        free = self.budget.get(job.gpu_type, 0)
        ends = list(self.ends.get(job.gpu_type, ()))
        heapq.heapify(ends)
        while ends:
            at, gpus = heapq.heappop(ends)
            free += gpus
            if free >= need:
                return Reservation(job.job_id, job.gpu_type, at, free - need)
        return None

    def _behind_text(self, gpu_type: str, blocker: str) -> str:
        """The "behind job <blocker>" text, the same for every job of a stopped type."""
        text = self._behind.get(gpu_type)
        if text is None:
            text = self._behind[gpu_type] = reasons.behind(blocker)
        return text

    def _cap_reason(self, key: tuple[str, str], cap: int) -> str:
        text = self._cap_reasons.get(key)
        if text is None:
            text = self._cap_reasons[key] = self._cap_text(cap, self.progress.get(key, 0), key[1])
        return text

    def _cap_text(self, cap: int, in_progress: int, size_class: str) -> str:
        """`reasons.cap_reason`, memoized: most capped users share one text."""
        figures = (cap, in_progress, size_class)
        text = self._cap_texts.get(figures)
        if text is None:
            text = self._cap_texts[figures] = reasons.cap_reason(*figures, self._classes_on)
        return text

    def _less_usage_ahead(self, job: Job, position: int) -> int:
        """Fair share: how many jobs ahead of this one, in its band (same effective priority,
        not overdue), belong to users with less usage. The band is sorted by usage, so they
        are the jobs from the band's start to the first job with this job's usage.
        (`FairOrder.aheads`: the same counts for a whole order.)"""
        if self.policy.name != "fair-share":
            return 0
        fair_key = fair_keys([job], self.policy, self.now, self.usage)[0]
        neg_prio, not_late, share = fair_key[0], fair_key[1], fair_key[2]
        if not not_late:
            self._band = None
            return 0
        band_id = -neg_prio
        band = self._band
        if band is None or band[0] != band_id:
            self._band = band = (band_id, position, position, share)
        elif share != band[3]:
            self._band = band = (band_id, band[1], position, share)
        return band[2] - band[1]

    def plan(
        self,
        ordered: Sequence[Job],
        *,
        explain: bool = True,
        fair: FairOrder | None = None,
    ) -> Plan:
        """Step every job of `ordered` (the policy's order; without `explain`, until the pass
        is exhausted); `fair`: the fair-share order `ordered` is the `jobs` of, if known."""
        admit: list[Admission] = []
        ahead: Callable[[int], int] | None = None
        aheads: Callable[[], Sequence[int]] | None = None
        if self._fair:
            if self.position or self._band is not None:  # mid-pass: each job after the last
                return self._stepped(ordered, explain)
            if fair is None or fair.jobs is not ordered:
                keys = fair_keys(ordered, self.policy, self.now, self.usage)
                fair = keyed_order(list(ordered), keys)
            ahead = fair.ahead
            aheads = fair.get_aheads
        start = self.position
        reasons_, tail, walked = walk(self, ordered, ahead, admit.append, explain)
        if fair is not None and walked:
            band = fair.band_at(walked - 1)
            if band is not None:
                band = (band[0], start + band[1] + 1, start + band[2] + 1, band[3])
            self._band = band
        return Plan(
            admit=admit,
            pending=Explained(ordered, reasons_, aheads, start, tail.reasons if tail else None)
            if explain
            else [],
            order=Ids(ordered) if explain else [],
            reservations=dict(self.reservations),
            available_after=dict(self.budget),
            policy=self.policy.name,
        )

    def _stepped(self, ordered: Sequence[Job], explain: bool) -> Plan:
        """`plan` by `step`ping each job (a fair-share pass that stepped jobs already)."""
        admit: list[Admission] = []
        pending: list[Pending] = []
        for job in ordered:
            entry = self.step(job)
            if type(entry) is Admission:
                admit.append(entry)
            elif explain:
                pending.append(entry)  # type: ignore[arg-type]  # not an Admission
            elif self.exhausted():
                break
        return Plan(
            admit=admit,
            pending=pending,
            order=list(map(_JOB_ID, ordered)) if explain else [],
            reservations=dict(self.reservations),
            available_after=dict(self.budget),
            policy=self.policy.name,
        )

    def exhausted(self) -> bool:
        """No further job of any known type can be admitted in this pass."""
        if self.paused:
            return True
        done = self._exhausted
        if done is None:
            stopped = self.stopped
            done = self._exhausted = all(n <= 0 or t in stopped for t, n in self.budget.items())
        return done


def plan(
    queue: Sequence[Job],
    running: Sequence[Running],
    headroom: Mapping[str, int],
    limits: Limits,
    policy: Policy,
    now: datetime,
    *,
    estimate: Estimate | None = None,
    usage: Mapping[str, float] | None = None,
    paused: bool = False,
    explain: bool = True,
) -> Plan:
    """The admissions of one pass over `queue` (any order) and, with `explain`, every other
    job's position in the policy's order and the binding constraint in plain words.

    `headroom` is the free GPUs per type now; `running` the jobs in PROGRESS (their users'
    slots, and when their GPUs free up); `usage` the users' decayed GPU-seconds at `now`
    (fair-share); `estimate` the runtime estimate of a queued job (reserve, fair-share)."""
    pass_ = Pass(
        running, headroom, limits, policy, now, estimate=estimate, usage=usage, paused=paused
    )
    if policy.name == "fair-share":
        fair = fair_order(queue, policy, now, usage or {})
        return pass_.plan(fair.jobs, explain=explain, fair=fair)
    return pass_.plan(policy_order(queue, policy, now, {}), explain=explain)
