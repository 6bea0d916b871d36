"""Hypothesis: random command sequences through the planner and decide/evolve keep every
DESIGN.md invariant after every step (cap, GPU budget, FIFO, exactly once, state machine),
with runtime limits, stuck checks and requeues (issue 18) in the mix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from events.domain.job import JobState, decide, evolve, initial_state
from events.domain.job_commands import (
    ConfirmAdmission,
    ConfirmCancelled,
    DetectStuck,
    EnforceRuntimeLimit,
    FireworksJobGone,
    JobCommand,
    ObserveFireworks,
    RejectAdmission,
    RequestCancel,
    ReturnToQueue,
    StartAdmission,
    SubmitJob,
)
from events.domain.job_events import AdmissionReason, AdmissionStarted, CancelRequested
from events.domain.rejections import CommandRejected
from events.domain.requeue import requeue
from events.domain.scheduling import Job, Limits, Policy, Running, plan

ALLOWED = {
    (None, "QUEUED"),
    ("QUEUED", "PROGRESS"),
    ("QUEUED", "CANCELLED"),
    ("PROGRESS", "QUEUED"),  # quota refusal of an open admission only (checked below)
    ("PROGRESS", "SUCCESS"),
    ("PROGRESS", "FAIL"),
    ("PROGRESS", "CANCELLED"),
}
USERS = ["u1", "u2", "u3"]
FIREWORKS_STATES = [
    "JOB_STATE_PENDING",
    "JOB_STATE_RUNNING",
    "JOB_STATE_COMPLETED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_PAUSED",
    "JOB_STATE_EARLY_STOPPED",
    "JOB_STATE_NEW_THING",
]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Scheduler(RuleBasedStateMachine):
    """A model of ftq: job states folded from decided events, admissions from the planner."""

    @initialize(
        quota=st.integers(0, 16),
        caps=st.fixed_dictionaries({u: st.integers(0, 3) for u in USERS}),
        policy=st.sampled_from(["strict-fifo", "backfill"]),
    )
    def setup(self, quota: int, caps: dict[str, int], policy: str) -> None:
        self.quota = quota
        self.caps = caps
        self.policy = policy
        self.jobs: dict[str, JobState] = {}
        self.clock = 0
        self.fireworks_ids: dict[str, str] = {}
        self.violations: list[str] = []
        self.limit_cancels: dict[str, int] = {}  # job -> CancelRequested events ftq recorded

    # --- helpers -------------------------------------------------------------------------
    def now(self) -> datetime:
        self.clock += 1
        return T0 + timedelta(seconds=self.clock)

    def apply(self, job_id: str, command: JobCommand) -> None:
        before = self.jobs.get(job_id, initial_state())
        try:
            events = decide(command, before)
        except CommandRejected:
            return
        state = before
        for event in events:
            previous = state
            state = evolve(state, event)
            if previous.status != state.status:
                if (previous.status, state.status) not in ALLOWED:
                    self.violations.append(f"{previous.status}->{state.status} via {event}")
                if (previous.status, state.status) == ("PROGRESS", "QUEUED") and not (
                    previous.admission_open
                ):
                    self.violations.append("back to QUEUED from an admitted job")
            if isinstance(event, CancelRequested) and event.by == "ftq":
                self.limit_cancels[job_id] = self.limit_cancels.get(job_id, 0) + 1
            if isinstance(event, AdmissionStarted):
                known = self.fireworks_ids.setdefault(job_id, event.fireworks_job_id)
                if known != event.fireworks_job_id:
                    self.violations.append(f"{job_id} got a second Fireworks id")
        self.jobs[job_id] = state

    def progress(self) -> list[JobState]:
        return [j for j in self.jobs.values() if j.status == "PROGRESS"]

    def pick(self, data: st.DataObject, status: str) -> JobState | None:
        candidates = sorted(j.job_id for j in self.jobs.values() if j.status == status)
        if not candidates:
            return None
        return self.jobs[data.draw(st.sampled_from(candidates))]

    # --- rules ---------------------------------------------------------------------------
    @rule(
        user=st.sampled_from(USERS),
        gpus=st.integers(1, 8),
        max_runtime=st.one_of(st.none(), st.integers(1, 600)),
    )
    def submit(self, user: str, gpus: int, max_runtime: int | None) -> None:
        job_id = f"job-{len(self.jobs):04d}"
        self.apply(
            job_id,
            SubmitJob(
                at=self.now(),
                job_id=job_id,
                user_id=user,
                user_email=f"{user}@example.com",
                kind="SFT",
                display_name=None,
                gpu_count=gpus,
                fireworks_payload={"dataset": "d"},
                max_runtime_minutes=max_runtime,
            ),
        )

    @rule(outside_usage=st.integers(0, 4), outcome=st.sampled_from(["ok", "quota", "reject"]))
    def admission_pass(self, outside_usage: int, outcome: str) -> None:
        in_use = max(
            outside_usage + sum(j.gpu_count for j in self.progress()),
            sum(j.gpu_count for j in self.progress()),
        )
        available = max(0, self.quota - in_use)
        queued = sorted(
            (j for j in self.jobs.values() if j.status == "QUEUED"),
            key=lambda j: (j.created_at or T0, j.job_id),
        )
        counts: dict[str, int] = {}
        for j in self.progress():
            counts[j.user_id] = counts.get(j.user_id, 0) + 1
        queue = [Job(j.job_id, j.user_id, j.created_at or T0, j.gpu_count) for j in queued]
        running = [
            Running(j.job_id, j.user_id, j.gpu_count, j.started_at or T0, self.now())
            for j in self.progress()
        ]
        limits = Limits(user_caps={(u, "small"): c for u, c in self.caps.items()})
        policy = Policy(self.policy)  # type: ignore[arg-type]
        result = plan(queue, running, {"h200": available}, limits, policy, self.now())
        self.check_fifo(queue, counts, result.admit, available)
        for admission in result.admit:
            job_id = admission.job.job_id
            reason = AdmissionReason(
                policy=self.policy,
                quota=self.quota,
                in_use=in_use,
                available=admission.available_before,
                queue_position=admission.queue_position,
            )
            self.apply(
                job_id,
                StartAdmission(
                    at=self.now(), fireworks_job_id=job_id, fireworks_job_name=job_id, reason=reason
                ),
            )
            match outcome:
                case "ok":
                    self.apply(job_id, ConfirmAdmission(at=self.now()))
                case "quota":
                    self.apply(job_id, ReturnToQueue(at=self.now(), message="quota"))
                case _:
                    self.apply(job_id, RejectAdmission(at=self.now(), message="bad", status=400))

    def check_fifo(
        self, queue: list[Job], counts: dict[str, int], admitted: list[object], available: int
    ) -> None:
        """Oracle, independent of the planner: no earlier eligible job may be passed over
        (strict), or passed over while it fitted (backfill)."""
        admitted_ids = {a.job.job_id for a in admitted}  # type: ignore[attr-defined]
        if not admitted_ids:
            return
        last = max(i for i, j in enumerate(queue) if j.job_id in admitted_ids)
        seen = dict(counts)
        budget = available
        for job in queue[:last]:
            if seen.get(job.user_id, 0) >= self.caps[job.user_id]:
                continue
            if job.job_id in admitted_ids:
                seen[job.user_id] = seen.get(job.user_id, 0) + 1
                budget -= job.gpu_count
                continue
            if self.policy == "strict-fifo" or job.gpu_count <= budget:
                self.violations.append(f"FIFO: {job.job_id} passed over")

    @rule(data=st.data(), fireworks_state=st.sampled_from(FIREWORKS_STATES))
    def fireworks_reports(self, data: st.DataObject, fireworks_state: str) -> None:
        job = self.pick(data, "PROGRESS")
        if job is not None:
            command = ObserveFireworks(at=self.now(), fireworks_state=fireworks_state, progress=50)
            self.apply(job.job_id, command)

    @rule(data=st.data())
    def fireworks_loses_a_job(self, data: st.DataObject) -> None:
        job = self.pick(data, "PROGRESS")
        if job is not None:
            self.apply(job.job_id, FireworksJobGone(at=self.now()))

    @rule(data=st.data(), status=st.sampled_from(["QUEUED", "PROGRESS", "SUCCESS"]))
    def user_cancels(self, data: st.DataObject, status: str) -> None:
        job = self.pick(data, status)
        if job is not None:
            self.apply(job.job_id, RequestCancel(at=self.now(), by=job.user_email))
            if job.status == "PROGRESS":
                self.apply(job.job_id, ConfirmCancelled(at=self.now()))

    @rule(minutes=st.integers(0, 600))
    def time_passes(self, minutes: int) -> None:
        self.clock += minutes * 60

    @rule(
        data=st.data(),
        default=st.sampled_from([None, 30.0, 240.0]),
        carry_out=st.booleans(),
    )
    def leader_checks_running_jobs(
        self, data: st.DataObject, default: float | None, carry_out: bool
    ) -> None:
        for job in self.progress():
            self.apply(job.job_id, EnforceRuntimeLimit(at=self.now(), default_minutes=default))
            self.apply(
                job.job_id, DetectStuck(at=self.now(), stuck_minutes=60, stalled_minutes=240)
            )
            after = self.jobs[job.job_id]
            if carry_out and after.cancel_reason is not None and not after.terminal:
                self.apply(job.job_id, ConfirmCancelled(at=self.now()))

    @rule(data=st.data(), status=st.sampled_from(["FAIL", "CANCELLED"]))
    def user_requeues(self, data: st.DataObject, status: str) -> None:
        job = self.pick(data, status)
        if job is not None:
            new_id = f"job-{len(self.jobs):04d}"
            self.apply(new_id, requeue(job, new_id, self.now()))
            new = self.jobs[new_id]
            assert (new.status, new.requeued_from, new.user_id) == (
                "QUEUED",
                job.job_id,
                job.user_id,
            )

    # --- invariants ----------------------------------------------------------------------
    @invariant()
    def no_violation_recorded(self) -> None:
        assert self.violations == []

    @invariant()
    def per_user_cap(self) -> None:
        for user in USERS:
            running = sum(1 for j in self.progress() if j.user_id == user)
            assert running <= self.caps[user], (user, running, self.caps[user])

    @invariant()
    def operations_rules(self) -> None:
        for job in self.jobs.values():
            assert job.stuck_reason is None or job.status == "PROGRESS", job
            assert self.limit_cancels.get(job.job_id, 0) <= 1, job.job_id  # decided once
            if job.status == "CANCELLED" and job.cancel_reason is not None:
                assert job.error == job.cancel_reason
            if job.cancel_reason is not None:  # only a job with a limit, past it
                assert job.admitted_at is not None

    @invariant()
    def gpu_budget(self) -> None:
        assert sum(j.gpu_count for j in self.progress()) <= self.quota

    @invariant()
    def one_fireworks_job_per_ftq_job(self) -> None:
        ids = [j.fireworks_job_id for j in self.jobs.values() if j.fireworks_job_id]
        assert len(ids) == len(set(ids))


Scheduler.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestScheduler = Scheduler.TestCase
