"""Audit: check DESIGN.md's invariants at every position of the log, from the log alone.

An independent oracle: it shares only `evolve` and the event types with the service, never
the admission planner. One pass, incremental state, O(n log n). What is checked, per event:

- `per-user-cap` — at each `job.admission_started` (where PROGRESS begins) the user's
  PROGRESS jobs, this one included, number at most their cap: the last `user.cap_set` for
  them in the log (`caps_from_log`), else `default_cap`. Lowering a cap below a user's
  current load is an admin act, not a violation; admitting past the new cap is.
- `gpu-budget` — each admission's recorded `reason` is consistent and fits: `gpu_count <=
  available` and `available <= quota - max(in_use, G)`, where G is the GPUs of every ftq job
  in PROGRESS just before the event (what this pass already admitted included), so neither a
  stale Fireworks usage counter nor a second admitting process can over-commit the quota.
- `fifo` — an admission of J with policy `strict-fifo` is a violation if some job K is
  QUEUED at that position with (created_at, job id) before J's and K's user under their cap
  then (PROGRESS jobs at that position); with `backfill` only if moreover `K.gpu_count <=
  reason.available` (K fit the headroom J got). Other policies state their own guarantee and
  are not checked. No decision overlaps a transaction that records new jobs, frees a slot
  or sets a cap (the admission gate, projections.recorder), so the log before a decision is
  the queue it saw.
- `dependencies` — a job that waits for others (`after`) is admitted only once every one of
  them is SUCCESS at that position; until then it is not eligible (the `fifo` check skips it)
  and its `job.dependency_failed` may come only while it is QUEUED.
- `exactly-once` — every `job.admission_started` of a job carries the same Fireworks job id,
  and no two jobs share one.
- `state-machine` — each job stream starts with `job.submitted` (naming the stream's job),
  every event is one `decide` can emit in the state it found (nothing after a terminal
  state; `job.admitted`, `job.returned_to_queue`, `job.rejected` only with an admission
  open; Fireworks observations and outcomes only once admitted; ...), and every stream's
  versions run 1, 2, 3, ... without gaps or repeats.
- `log` — a row that does not decode.

Against the policy in force (`scheduler.policy_in_force`, recorded by a leader when it starts
with a policy or its settings change), each admission after such a record is also checked:

- `policy` — the admission names the policy recorded in force at its position;
- with the default rules (strict-fifo or backfill, no size classes, one GPU type, every job at
  the default priority) the `per-user-cap` and `fifo` checks above, with the recorded caps;
- otherwise the rules of `events.domain.scheduling.audit.check_admission`, on the queue, the
  jobs in PROGRESS, the per-class caps and share weights as the log has them at that position,
  and the figures the admission recorded: `class-cap` (per-user cap per size class), `big-
  reserve` (a big admission leaves the reserve free), `order` (strict: no eligible job of the
  same type ahead, where with classes on a big job held by its cap or the reserve is skipped
  and blocks nothing, so only a job that does not fit stops a strict pass; backfill: none
  ahead that fitted; reserve/fair-share: none ahead that fitted before the first blocked
  job, and fair share in the order of the users' decayed usage, overdue jobs first, with
  priority aging), `reservation` (the first blocked job holds the recorded reservation, and
  the admission ends before it by its recorded estimate or uses only its spare GPUs).

Invariant 5 (nothing lost: a 2xx answer is durable before it is sent) cannot be seen in the
log alone, so it is not checked here."""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable
from datetime import datetime

import msgspec

from events.domain.aggregates import is_job_event
from events.domain.codec import UnknownEventType, decode
from events.domain.directory_events import PolicyInForce, UserAdded, UserCapSet, UserShareSet
from events.domain.job import JobState, evolve, initial_state
from events.domain.job_events import (
    AdmissionStarted,
    Admitted,
    Cancelled,
    CancelRequested,
    DependencyFailed,
    Failed,
    FireworksStateObserved,
    JobEvent,
    JobSubmitted,
    RejectedByFireworks,
    ReturnedToQueue,
    SecretsShredded,
    StuckCleared,
    StuckDetected,
    Succeeded,
)
from events.domain.scheduling import (
    Admission,
    Job,
    Limits,
    Policy,
    Reservation,
    Running,
    UsageLedger,
    check_admission,
)
from events.domain.scheduling.model import DEFAULT_GPU_TYPE, DEFAULT_PRIORITY, POLICIES
from projections.replay import LogRow, gc_paused

CAP, BUDGET, FIFO, EXACTLY_ONCE, STATE_MACHINE, LOG, DEPENDENCIES = (
    "per-user-cap",
    "gpu-budget",
    "fifo",
    "exactly-once",
    "state-machine",
    "log",
    "dependencies",
)
POLICY, CLASS_CAP, BIG_RESERVE, ORDER, RESERVATION = (
    "policy",
    "class-cap",
    "big-reserve",
    "order",
    "reservation",
)
_DOMAIN_RULES = {"class-cap": CLASS_CAP, "big-reserve": BIG_RESERVE, "order": ORDER}

_NO_JOB = initial_state()
Key = tuple[datetime, str]  # a job's place in FIFO order: (created_at, job id)


class Violation(msgspec.Struct, frozen=True):
    invariant: str
    positions: tuple[int, ...]
    job_id: str | None
    message: str


def illegal_transition(state: JobState, event: JobEvent) -> str | None:
    """Why `decide` could never have emitted `event` in `state` (None: it could)."""
    if state.status is None:
        return None if isinstance(event, JobSubmitted) else "first event is not job.submitted"
    if isinstance(event, JobSubmitted):
        return "job.submitted on a job that exists"
    if isinstance(event, SecretsShredded):  # the only event a terminal job may still get
        return None if state.terminal else f"secrets shredded while {state.status}"
    if state.terminal:
        return f"event after the terminal state {state.status}"
    queued, is_open = state.status == "QUEUED", state.admission_open
    running = state.status == "PROGRESS" and not is_open
    ok = False
    match event:
        case AdmissionStarted():
            ok = queued and state.cancel_requested_by is None
        case Admitted() | ReturnedToQueue() | RejectedByFireworks():
            ok = is_open
        case FireworksStateObserved() | Succeeded() | Failed():
            ok = running
        case CancelRequested():
            ok = not queued and state.cancel_requested_by is None
        case StuckDetected():
            ok = running and state.stuck_reason is None
        case StuckCleared():
            ok = running and state.stuck_reason is not None
        case Cancelled():
            ok = queued or running or state.cancel_requested_by is not None
        case DependencyFailed():
            ok = queued
    return None if ok else f"not allowed in {state.status}{' (admission open)' * is_open}"


# Fast path: (status, admission open) -> event types always allowed there, whatever else the
# state holds; anything else goes through `illegal_transition`.
_SURELY_ALLOWED: dict[tuple[str | None, bool], frozenset[str]] = {
    ("PROGRESS", False): frozenset(
        {"job.fireworks_state_observed", "job.succeeded", "job.failed", "job.cancelled"}
    ),
    ("PROGRESS", True): frozenset({"job.admitted", "job.returned_to_queue", "job.rejected"}),
    ("QUEUED", False): frozenset({"job.cancelled", "job.dependency_failed"}),
    (None, False): frozenset({"job.submitted"}),
}


class _Queue:
    """QUEUED jobs in FIFO order per (user, gpu_count), with one lazy min-heap per gpu_count
    over the heads of users under their cap: "is any eligible job with at most g GPUs ahead of
    J?" costs O(distinct gpu counts · log n) instead of a scan of the queue."""

    def __init__(self, eligible: dict[str, bool]) -> None:
        self.eligible = eligible  # user -> under cap now (kept by the auditor)
        self.lists: dict[tuple[str, int], list[Key]] = {}
        self.heaps: dict[int, list[tuple[Key, str]]] = {}
        self.sizes: dict[str, set[int]] = {}

    def add(self, user: str, gpus: int, key: Key) -> None:
        entries = self.lists.setdefault((user, gpus), [])
        insort(entries, key)
        self.sizes.setdefault(user, set()).add(gpus)
        if entries[0] == key and self.eligible.get(user, False):
            heapq.heappush(self.heaps.setdefault(gpus, []), (key, user))

    def remove(self, user: str, gpus: int, key: Key) -> None:
        entries = self.lists.get((user, gpus), [])
        i = bisect_left(entries, key)
        if i < len(entries) and entries[i] == key:
            del entries[i]
            if i == 0 and entries and self.eligible.get(user, False):
                heapq.heappush(self.heaps.setdefault(gpus, []), (entries[0], user))

    def became_eligible(self, user: str) -> None:
        for gpus in self.sizes.get(user, ()):
            entries = self.lists[(user, gpus)]
            if entries:
                heapq.heappush(self.heaps.setdefault(gpus, []), (entries[0], user))

    def first_ahead(self, key: Key, max_gpus: int | None) -> tuple[Key, str] | None:
        """The earliest eligible queued job before `key` with at most `max_gpus` GPUs."""
        best: tuple[Key, str] | None = None
        for gpus, heap in self.heaps.items():
            if max_gpus is not None and gpus > max_gpus:
                continue
            while heap:
                head, user = heap[0]
                entries = self.lists[(user, gpus)]
                if self.eligible.get(user, False) and entries and entries[0] == head:
                    break
                heapq.heappop(heap)  # stale; re-pushed if the user becomes eligible again
            if heap and heap[0][0] < key and (best is None or heap[0] < best):
                best = heap[0]
        return best


class _Auditor:
    def __init__(self, default_cap: int, caps_from_log: bool) -> None:
        self.default_cap = default_cap
        self.caps_from_log = caps_from_log
        self.out: list[Violation] = []
        self.jobs: dict[str, JobState] = {}
        self.versions: dict[str, int] = {}
        self.last_position: dict[str, int] = {}
        self.submitted_at: dict[str, int] = {}
        self.caps: dict[str, int] = {}
        self.progress: dict[str, dict[str, int]] = {}  # user -> {job id: admission position}
        self.progress_gpus = 0
        self.eligible: dict[str, bool] = {}
        self.queue = _Queue(self.eligible)
        self.fireworks_ids: dict[str, tuple[str, int]] = {}  # fireworks id -> (job, position)
        self.job_fireworks: dict[str, tuple[str, int]] = {}  # job -> (fireworks id, position)
        self.unmet: dict[str, set[str]] = {}  # job -> the jobs of its `after` not SUCCESS yet
        self.dependents: dict[str, set[str]] = {}  # job -> jobs waiting for it
        # Against the policy in force: the record, the queue and PROGRESS jobs in the
        # planner's terms, per-class caps and shares, and decayed usage from the log.
        self.in_force: PolicyInForce | None = None
        self.queued: dict[str, Job] = {}
        self.running: dict[str, Running] = {}
        self.class_caps: dict[tuple[str, str], int | None] = {}
        self.shares: dict[str, float] = {}
        self.unusual = 0  # queued jobs of another GPU type or priority than the defaults
        self.ledger: UsageLedger | None = None

    def flag(self, invariant: str, positions: tuple[int, ...], job: str | None, msg: str) -> None:
        self.out.append(Violation(invariant, positions, job, msg))

    def cap_of(self, user: str) -> int:
        return self.caps.get(user, self.default_cap)

    def refresh(self, user: str) -> None:
        now = len(self.progress.get(user, ())) < self.cap_of(user)
        if now and not self.eligible.get(user, False):
            self.eligible[user] = True
            self.queue.became_eligible(user)
        else:
            self.eligible[user] = now

    def row(self, row: LogRow) -> None:
        stream, position, type_ = row.stream_id, row.position, row.type
        expected = self.versions.get(stream, 0) + 1
        self.versions[stream] = row.stream_version
        if row.stream_version != expected:
            self.flag(
                STATE_MACHINE,
                (position,),
                stream if is_job_event(type_) else None,
                f"stream {stream} version {row.stream_version}, expected {expected}",
            )
        try:
            event = decode(type_, row.schema_version, row.data)
        except UnknownEventType as exc:
            self.flag(LOG, (position,), None, str(exc))
            return
        if is_job_event(type_):
            self.job_event(stream, position, type_, event)  # type: ignore[arg-type]
        elif isinstance(event, UserCapSet):
            key = (event.user_id, event.size_class)
            if event.unlimited:
                self.class_caps[key] = None
            elif event.cap is None:
                self.class_caps.pop(key, None)
            else:
                self.class_caps[key] = event.cap
            if self.caps_from_log and event.size_class == "small":
                if event.unlimited:
                    self.caps[event.user_id] = 1 << 30
                elif event.cap is None:
                    self.caps.pop(event.user_id, None)
                else:
                    self.caps[event.user_id] = event.cap
            self.refresh(event.user_id)
        elif isinstance(event, UserShareSet):
            if event.share is None:
                self.shares.pop(event.user_id, None)
            else:
                self.shares[event.user_id] = event.share
        elif isinstance(event, PolicyInForce):
            self.in_force = event
            cap = event.settings.get("user_cap_small", self.default_cap)
            self.default_cap = 1 << 30 if cap is None else int(cap)
            for user in list(self.eligible):
                self.refresh(user)
        elif isinstance(event, UserAdded):
            self.refresh(event.user_id)

    def job_event(self, job_id: str, position: int, type_: str, event: JobEvent) -> None:
        before = self.jobs.get(job_id, _NO_JOB)
        problem = None
        if type_ not in _SURELY_ALLOWED.get((before.status, before.admission_open), ()):
            problem = illegal_transition(before, event)
        if type_ == "job.submitted":
            assert isinstance(event, JobSubmitted)
            self.submitted_at.setdefault(job_id, position)
            if problem is None and event.job_id != job_id:
                problem = f"job.submitted names job {event.job_id}"
        if problem is not None:
            previous = self.last_position.get(job_id)
            where = (position,) if previous is None else (previous, position)
            self.flag(STATE_MACHINE, where, job_id, f"{_tag(event)}: {problem}")
        after = evolve(before, event)
        if type_ == "job.submitted" and after.after:
            self.waits(job_id, after)
        if type_ == "job.admission_started":
            assert isinstance(event, AdmissionStarted)
            self.admission(job_id, position, after, event)
        if before.status != after.status or before.gpu_count != after.gpu_count:
            self.move(job_id, position, before, after)
            self.track(job_id, before, after, event.at)
        self.jobs[job_id] = after
        if after.status == "SUCCESS" and before.status != "SUCCESS":
            self.succeeded(job_id)
        self.last_position[job_id] = position

    def waits(self, job_id: str, job: JobState) -> None:
        """A new job that waits for others: not eligible until they are all SUCCESS."""
        missing = {d for d in job.after if self.jobs.get(d, _NO_JOB).status != "SUCCESS"}
        self.unmet[job_id] = missing
        for dependency in missing:
            self.dependents.setdefault(dependency, set()).add(job_id)

    def succeeded(self, job_id: str) -> None:
        """`job_id` is SUCCESS: the QUEUED jobs that waited only for it become eligible."""
        for waiting in self.dependents.pop(job_id, ()):
            missing = self.unmet.get(waiting, set())
            missing.discard(job_id)
            state = self.jobs.get(waiting, _NO_JOB)
            if not missing and state.status == "QUEUED" and state.created_at is not None:
                self.queue.add(state.user_id, state.gpu_count, (state.created_at, waiting))
                self.refresh(state.user_id)

    def admission(self, job_id: str, pos: int, job: JobState, event: AdmissionStarted) -> None:
        """Checks made just before the admission takes effect (`job` is the state after)."""
        reason, user = event.reason, job.user_id
        missing = sorted(self.unmet.get(job_id, ()))
        if missing:
            self.flag(
                DEPENDENCIES,
                (self.submitted_at.get(job_id, 0), pos),
                job_id,
                f"admitted while job {missing[0]} it waits for (after) was "
                f"{self.jobs.get(missing[0], _NO_JOB).status or 'unknown'}",
            )
        running = self.progress.get(user, {})
        load = len(running) + (job_id not in running)
        if self.in_force is not None and reason.policy != self.in_force.policy:
            self.flag(
                POLICY,
                (pos,),
                job_id,
                f"admitted under {reason.policy}, but {self.in_force.policy} was in force",
            )
        if load > self.cap_of(user) and (self.in_force is None or self.default_rules()):
            others = tuple(p for j, p in running.items() if j != job_id)
            self.flag(
                CAP, (*others, pos), job_id, f"{user} at {load} PROGRESS, cap {self.cap_of(user)}"
            )
        held = self.progress_gpus - job.gpu_count * (job_id in running)  # not a duplicate's own
        used = max(reason.in_use, held)
        if job.gpu_count > reason.available or reason.available > reason.quota - used:
            self.flag(
                BUDGET,
                (pos,),
                job_id,
                f"{job.gpu_count} GPUs admitted with available={reason.available}, quota="
                f"{reason.quota}, in_use={reason.in_use}, ftq PROGRESS GPUs={held}",
            )
        if self.in_force is not None and not self.default_rules():
            self.against_policy(job_id, pos, job, event)
        elif reason.policy in ("strict-fifo", "backfill") and job.created_at is not None:
            fit = None if reason.policy == "strict-fifo" else reason.available
            ahead = self.queue.first_ahead((job.created_at, job_id), fit)
            if ahead is not None:
                other = ahead[0][1]
                self.flag(
                    FIFO,
                    (self.submitted_at.get(other, 0), pos),
                    job_id,
                    f"{reason.policy}: admitted while {other} ({self.jobs[other].gpu_count} GPUs,"
                    f" {ahead[1]} under cap) waited ahead of it",
                )
        self.exactly_once(job_id, pos, event.fireworks_job_id)

    def default_rules(self) -> bool:
        """Whether the policy in force is checked by the fast FIFO checks: strict-fifo or
        backfill without size classes, one GPU type and every priority the default."""
        record = self.in_force
        assert record is not None
        return (
            record.policy in ("strict-fifo", "backfill")
            and not record.settings.get("big_job_gpus")
            and self.unusual == 0
        )

    def limits(self) -> Limits:
        record = self.in_force
        assert record is not None
        got = record.settings
        return Limits(
            big_job_gpus=int(got.get("big_job_gpus") or 0),
            cap_small=got.get("user_cap_small", 1),
            cap_big=got.get("user_cap_big", 1),
            big_job_reserve=int(got.get("big_job_reserve") or 0),
            user_caps=dict(self.class_caps),
        )

    def policy(self) -> Policy:
        record = self.in_force
        assert record is not None
        got = record.settings
        name = record.policy if record.policy in POLICIES else "strict-fifo"
        return Policy(
            name,
            half_life_hours=float(got.get("fair_share_half_life_hours", 168.0)),
            max_wait_hours=float(got.get("max_wait_hours", 72.0)),
            aging_hours=float(got.get("priority_aging_hours", 6.0)),
            weights=dict(self.shares),
        )

    def usage_at(self, now: datetime, policy: Policy) -> dict[str, float]:
        if self.ledger is None:
            return {}
        if self.ledger.half_life_s != policy.half_life_hours * 3600.0:
            return {}  # recorded with another half-life than the one in force: not compared
        return self.ledger.at(now, self.running.values())

    def against_policy(self, job_id: str, pos: int, job: JobState, event: AdmissionStarted) -> None:
        """The domain's rules for one admission, on what the log shows at this position."""
        reason = event.reason
        queued = self.queued.get(job_id)
        if queued is None:
            return  # not QUEUED: the state machine check names it
        policy = self.policy()
        reservation = None
        if reason.reservation_job is not None and reason.reservation_at is not None:
            reservation = Reservation(
                reason.reservation_job,
                reason.gpu_type,
                reason.reservation_at,
                reason.reservation_spare or 0,
            )
        admission = Admission(
            queued,
            reason.queue_position,
            reason.available,
            "big" if reason.size_class == "big" else "small",
            reason.cap,
            reason.user_load,
            reservation=reservation,
            spare_before=reason.spare_before,
            estimate_s=reason.estimate_s,
            usage=reason.usage,
            holders=tuple(reason.holders),
        )
        usage = self.usage_at(event.at, policy) if policy.name == "fair-share" else None
        running = [r for j, r in self.running.items() if j != job_id]
        broken = check_admission(
            admission, list(self.queued.values()), running, self.limits(), policy, event.at,
            usage=usage,
        )  # fmt: skip
        for problem in broken:
            rule = problem.split(":", 1)[0]
            if rule == "budget":
                continue  # the gpu-budget check above covers it
            invariant = _DOMAIN_RULES.get(rule, RESERVATION if rule == "reservation" else ORDER)
            self.flag(invariant, (pos,), job_id, f"{policy.name}: {problem}")

    def track(self, job_id: str, before: JobState, after: JobState, at: datetime) -> None:
        """The queue, PROGRESS jobs and usage in the planner's terms."""
        if before.status == "QUEUED":
            gone = self.queued.pop(job_id, None)
            if gone is not None and _unusual(gone):
                self.unusual -= 1
        elif before.status == "PROGRESS":
            run = self.running.pop(job_id, None)
            if run is not None and after.status != "QUEUED":
                ledger = self._ledger(at)
                ledger.finish(run.user_id, run.gpu_count, run.started_at, at)
        if after.status == "QUEUED" and after.created_at is not None:
            queued = Job(
                job_id, after.user_id, after.created_at, after.gpu_count, after.gpu_type,
                after.kind, after.priority,
            )  # fmt: skip
            self.queued[job_id] = queued
            if _unusual(queued):
                self.unusual += 1
        elif after.status == "PROGRESS":
            start = after.started_at or at
            self.running[job_id] = Running(
                job_id, after.user_id, after.gpu_count, start, start, after.gpu_type, after.kind
            )
            self._ledger(at)

    def _ledger(self, at: datetime) -> UsageLedger:
        half_life = 168.0
        if self.in_force is not None:
            half_life = float(self.in_force.settings.get("fair_share_half_life_hours", 168.0))
        if self.ledger is None or self.ledger.half_life_s != half_life * 3600.0:
            self.ledger = UsageLedger(half_life, at)
        elif (at - self.ledger.epoch).total_seconds() > 64 * self.ledger.half_life_s:
            self.ledger.rebase(at)
        return self.ledger

    def exactly_once(self, job_id: str, pos: int, fireworks_id: str) -> None:
        mine = self.job_fireworks.get(job_id)
        if mine is None:
            self.job_fireworks[job_id] = (fireworks_id, pos)
        elif mine[0] != fireworks_id:
            self.flag(
                EXACTLY_ONCE,
                (mine[1], pos),
                job_id,
                f"second Fireworks job id {fireworks_id} (first {mine[0]})",
            )
        owner = self.fireworks_ids.setdefault(fireworks_id, (job_id, pos))
        if owner[0] != job_id:
            self.flag(
                EXACTLY_ONCE,
                (owner[1], pos),
                job_id,
                f"Fireworks job id {fireworks_id} already belongs to job {owner[0]}",
            )

    def move(self, job_id: str, pos: int, before: JobState, after: JobState) -> None:
        """Keep the queue, per-user PROGRESS sets and GPU total in step with the status."""
        touched = {before.user_id, after.user_id}
        if before.status == "QUEUED" and before.created_at is not None:
            self.queue.remove(before.user_id, before.gpu_count, (before.created_at, job_id))
        elif before.status == "PROGRESS":
            self.progress.get(before.user_id, {}).pop(job_id, None)
            self.progress_gpus -= before.gpu_count
        if after.status == "QUEUED" and after.created_at is not None:
            if not self.unmet.get(job_id):  # a job waiting for others is not eligible
                self.queue.add(after.user_id, after.gpu_count, (after.created_at, job_id))
        elif after.status == "PROGRESS":
            self.progress.setdefault(after.user_id, {})[job_id] = pos
            self.progress_gpus += after.gpu_count
        for user in touched:
            self.refresh(user)


def _unusual(job: Job) -> bool:
    return job.gpu_type != DEFAULT_GPU_TYPE or job.priority != DEFAULT_PRIORITY


def _tag(event: JobEvent) -> str:
    return str(event.__struct_config__.tag)


def audit(
    rows: Iterable[LogRow], *, default_cap: int, caps_from_log: bool = True
) -> list[Violation]:
    """Every violation of the invariants in the history `rows` (log read order); [] = clean."""
    auditor = _Auditor(default_cap, caps_from_log)
    step = auditor.row
    with gc_paused():
        for row in rows:
            step(row)
    return auditor.out
