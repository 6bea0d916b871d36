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

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from events.domain.scheduling import reasons
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
from events.domain.scheduling.order import FairKey, fair_keys, policy_order_keyed, usage_key

Estimate = Callable[[Job], float]  # seconds a job is expected to run
_DEFAULT: Final[Any] = object()  # no per-user cap: the class's default


def constant_estimate(seconds: float = 7200.0) -> Estimate:
    """The same estimate for every job, capped by its `max_runtime_minutes`."""

    def estimate(job: Job) -> float:
        if job.max_runtime_minutes is not None:
            return min(seconds, job.max_runtime_minutes * 60.0)
        return seconds

    return estimate


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
        self.progress: dict[tuple[str, str], int] = {}
        self.ends: dict[str, list[tuple[datetime, int]]] = {}
        for r in running:
            key = (r.user_id, limits.size_class(r.gpu_count))
            self.progress[key] = self.progress.get(key, 0) + 1
            self.ends.setdefault(r.gpu_type, []).append((max(r.expected_end, now), r.gpu_count))
        self.slots = dict(self.progress)
        self.stopped: dict[str, str] = {}  # gpu type -> the strict blocker's job id
        self.reservations: dict[str, Reservation] = {}
        self.spare: dict[str, int] = {}
        self.admitted = 0
        self.position = 0
        self.version = 0  # bumped by every change a later job's entry may depend on
        self._easy = policy.name in ("reserve", "fair-share")
        self._strict = policy.name == "strict-fifo"
        self._fair = policy.name == "fair-share"
        self._class_caps = {"small": limits.cap_small, "big": limits.cap_big}
        self._classes_on = limits.big_job_gpus > 0
        self._cap_reasons: dict[tuple[str, str], str] = {}
        self._wait_reasons: dict[str, str] = {}  # gpu type -> "waiting for a reservation ..."
        self._ends_at: dict[float, datetime] = {}  # estimate (s) -> now + estimate
        self._behind: dict[str, str] = {}  # gpu type -> "behind job ..." (its strict blocker)
        self._exhausted: bool | None = None  # cached `exhausted()`; None: to be computed
        # fair share: (band, band's first position, first position of this usage key, usage key)
        self._band: tuple[int, int, int, float] | None = None

    def step(self, job: Job) -> Admission | Pending:
        return self._step(job, None)

    def _step(self, job: Job, fair_key: FairKey | None) -> Admission | Pending:
        """`step`, with the job's fair-share key when the order computed it already."""
        self.position = position = self.position + 1
        limits = self.limits
        # (inlined: Limits.size_class and Limits.cap, on the hot path of a 100k-job pass)
        big = limits.big_job_gpus
        size_class: SizeClass = "big" if big and job.gpu_count >= big else "small"
        key = (job.user_id, size_class)
        held = self.slots.get(key, 0)
        cap = limits.user_caps.get(key, _DEFAULT)
        cap = self._class_caps[size_class] if cap is _DEFAULT else cap
        ahead = self._less_usage_ahead(job, position, fair_key) if self._fair else 0
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
        free = self.budget.get(job.gpu_type, 0)
        for at, gpus in sorted(self.ends.get(job.gpu_type, ())):
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
            in_progress = self.progress.get(key, 0)
            text = reasons.cap_reason(cap, in_progress, key[1], self._classes_on)
            self._cap_reasons[key] = text
        return text

    def _less_usage_ahead(self, job: Job, position: int, fair_key: FairKey | None) -> int:
        """Fair share: how many jobs ahead of this one, in its band (same effective priority,
        not overdue), belong to users with less usage. The band is sorted by usage, so they
        are the jobs from the band's start to the first job with this job's usage.
        `fair_key`: the job's key in the fair-share order (`fair_keys`), if computed."""
        if self.policy.name != "fair-share":
            return 0
        if fair_key is None:
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
        keys: Sequence[FairKey] | None = None,
    ) -> Plan:
        """Step every job of `ordered` (the policy's order); `keys`: their fair-share keys
        (`fair_keys`, aligned with `ordered`) when the order computed them."""
        admit: list[Admission] = []
        pending: list[Pending] = []
        fair = keys if self._fair and keys is not None else None
        self._walk(ordered, fair, admit.append, pending.append if explain else None)
        return Plan(
            admit=admit,
            pending=pending,
            order=[j.job_id for j in ordered] if explain else [],
            reservations=dict(self.reservations),
            available_after=dict(self.budget),
            policy=self.policy.name,
        )

    def _walk(
        self,
        ordered: Sequence[Job],
        keys: Sequence[FairKey] | None,
        add_admit: Callable[[Admission], None],
        add_pending: Callable[[Pending], None] | None,
    ) -> None:
        """`step` each job of `ordered` in turn (without `add_pending`: until the pass is
        exhausted), without `step`'s work for the jobs whose entry cannot change the pass
        (most of a long queue): their reason depends only on their user's slot in their
        class (held or not) and their GPU type and count, both memoized until the pass
        changes (`version`). Any other job goes through `_step`."""
        big = self.limits.big_job_gpus
        fair, paused = self._fair, self.paused
        capped: dict[tuple[str, str], str | None] = {}  # (user, class) -> cap text or None
        # (type, GPUs) -> base text, or None, or the reservation it waits for unless it ends
        # before it (it fits now, but not in the reservation's spare GPUs)
        by_type: dict[tuple[str, int], str | Reservation | None] = {}
        version = self.version
        done = self.exhausted()
        position = self.position
        for n, job in enumerate(ordered):
            size_class: SizeClass = "big" if big and job.gpu_count >= big else "small"
            key = (job.user_id, size_class)
            text = capped.get(key, _DEFAULT)
            if text is _DEFAULT:
                text = capped[key] = self._held_by_cap(key, size_class)
            if text is None and not paused:
                text = self._type_text(job, size_class, by_type)
                if text is None:  # may change the pass: step it
                    self.position = position
                    entry = self._step(job, None if keys is None else keys[n])
                    position = self.position
                    if self.version != version:
                        version = self.version
                        capped.clear()
                        by_type.clear()
                        done = self.exhausted()
                    if type(entry) is Admission:
                        add_admit(entry)
                    elif add_pending is not None:
                        add_pending(entry)  # type: ignore[arg-type]  # not an Admission
                    elif done:
                        break
                    continue
                if fair:
                    position += 1
                    ahead = self._less_usage_ahead(job, position, None if keys is None else keys[n])
                    if add_pending is not None:
                        add_pending(Pending(job, position, reasons.less_usage(text, ahead)))
                    elif done:
                        break
                    continue
            elif text is None:
                text = reasons.PAUSED_REASON
            position += 1
            if fair:
                self._less_usage_ahead(job, position, None if keys is None else keys[n])
            if add_pending is not None:
                add_pending(Pending(job, position, text))
            elif done:
                break
        self.position = position

    def _held_by_cap(self, key: tuple[str, str], size_class: SizeClass) -> str | None:
        """The cap reason when the user's slots in this class are all held, else None."""
        cap = self.limits.user_caps.get(key, _DEFAULT)
        cap = self._class_caps[size_class] if cap is _DEFAULT else cap
        if cap is not None and self.slots.get(key, 0) >= cap:
            return self._cap_reason(key, cap)
        return None

    def _type_text(
        self,
        job: Job,
        size_class: SizeClass,
        by_type: dict[tuple[str, int], str | Reservation | None],
    ) -> str | None:
        """`_settled_reason` for the job's type and size, memoized in `by_type`; a job that
        fits now but not in the reservation's spare GPUs waits unless it ends before it."""
        kind = (job.gpu_type, job.gpu_count)
        found = by_type.get(kind, _DEFAULT)
        if found is _DEFAULT:
            found = by_type[kind] = self._settled_reason(job.gpu_type, job.gpu_count, size_class)
        text: str | Reservation | None = found
        if isinstance(text, Reservation):  # fits now, wider than the spare GPUs
            ends_after = self._end_of(self.estimate(job)) > text.at
            return self._waiting(text) if ends_after else None  # None: admitted
        return text

    def _settled_reason(
        self, gpu_type: str, gpus: int, size_class: SizeClass
    ) -> str | Reservation | None:
        """The reason `step` gives a job of this type and size that its user's slot does not
        hold, when that step changes nothing (fair share: before its usage suffix); None
        when it may change the pass (stop or reserve the type, admit); the type's reservation
        when the job fits now but not in its spare GPUs (it waits unless it ends before)."""
        blocker = self.stopped.get(gpu_type)
        if blocker is not None:
            return self._behind_text(gpu_type, blocker)
        free = self.budget.get(gpu_type, 0)
        reserve = self.limits.big_job_reserve if size_class == "big" else 0
        if size_class == "big" and free - gpus < reserve:
            base = reasons.big_reserve(gpus, free, reserve)
        elif gpus > free:
            base = reasons.no_fit(gpus, free)
            if self._strict:
                return None
        else:
            current = self.reservations.get(gpu_type)
            if current is not None and gpus > self.spare[gpu_type]:
                return current
            return None
        if not self._easy:
            return base
        current = self.reservations.get(gpu_type)
        if current is None:
            return None
        return f"{base}; {self._waiting(current)}"

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
    ordered, keys = policy_order_keyed(queue, policy, now, usage or {})
    return pass_.plan(ordered, explain=explain, keys=keys)
