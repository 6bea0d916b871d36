from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from events.domain.codec import AnyEvent, decode, encode
from events.domain.job import JobState, decide, evolve, initial_state
from events.domain.job_commands import (
    ConfirmAdmission,
    ConfirmCancelled,
    JobCommand,
    ObserveFireworks,
    RejectAdmission,
    RequestCancel,
    ReturnToQueue,
    StartAdmission,
    SubmitJob,
)
from events.domain.job_events import (
    AdmissionReason,
    AdmissionStarted,
    Admitted,
    FireworksStateObserved,
    JobSubmitted,
)
from events.domain.scheduling import Job, Limits, Policy, Running, plan
from events.store.log import RecordedEvent
from projections.audit import (
    BUDGET,
    CAP,
    EXACTLY_ONCE,
    FIFO,
    LOG,
    STATE_MACHINE,
    Violation,
    audit,
)

try:
    from tests.unit.history import History, renumbered
except ImportError:  # tests/unit is not a package: pytest put this folder on sys.path
    from history import History, renumbered  # type: ignore[no-redef]

ANN, BOB, CAT = "ann@x.com", "bob@x.com", "cat@x.com"


def found(h: History, default_cap: int = 1, **kw: bool) -> list[tuple[str, tuple[int, ...]]]:
    return [(v.invariant, v.positions) for v in audit(h.rows, default_cap=default_cap, **kw)]


def test_a_clean_history_passes() -> None:
    h = History()
    h.user(ANN, cap=2)
    h.submit("a1", ANN, 4)
    h.submit("a2", ANN, 4)
    h.submit("b1", BOB, 8)
    h.admit("a1", available=16)
    h.admit("a2", available=12, in_use=4)
    h.admit("b1", available=8, in_use=4)
    for job in ("a1", "a2", "b1"):
        h.confirm(job)
        h.observe(job, 50.0)
    h.succeed("a1")
    h.submit("a3", ANN, 4)
    h.admit("a3", available=4, in_use=12)
    h.requeue("a3")
    h.cancel("a3")
    assert audit(h.rows, default_cap=1) == []


def test_cap_is_checked_at_every_admission() -> None:
    h = History()
    h.submit("a1", ANN)
    h.submit("a2", ANN)
    first = h.admit("a1", available=16)
    second = h.admit("a2", available=12, in_use=4)
    assert found(h) == [(CAP, (first, second))]
    assert found(h, default_cap=2) == []


def test_cap_comes_from_the_log_unless_told_otherwise() -> None:
    h = History()
    h.user(ANN, cap=2)
    h.submit("a1", ANN)
    h.submit("a2", ANN)
    h.admit("a1", available=16)
    h.admit("a2", available=12, in_use=4)
    assert found(h) == []
    assert [v.invariant for v in audit(h.rows, default_cap=1, caps_from_log=False)] == [CAP]
    h.set_cap(ANN, None)  # back to the default: the next admission is over the cap
    h.submit("a3", ANN)
    third = h.admit("a3", available=8, in_use=8)
    assert [(v.invariant, v.positions[-1], v.job_id) for v in audit(h.rows, default_cap=2)] == [
        (CAP, third, "a3")
    ]


def test_a_finished_job_frees_its_users_slot() -> None:
    h = History()
    h.submit("a1", ANN)
    h.submit("a2", ANN)
    h.admit("a1", available=16)
    h.confirm("a1")
    h.succeed("a1")
    h.admit("a2", available=16)
    assert found(h) == []


def test_budget_gpu_count_over_available() -> None:
    h = History()
    h.submit("a1", ANN, gpus=8)
    pos = h.admit("a1", available=4, quota=16, in_use=12)
    assert found(h) == [(BUDGET, (pos,))]


def test_budget_available_over_quota_minus_in_use() -> None:
    h = History()
    h.submit("a1", ANN, gpus=4)
    pos = h.admit("a1", available=8, quota=16, in_use=12)
    assert found(h) == [(BUDGET, (pos,))]


def test_budget_counts_ftq_progress_jobs_when_usage_is_stale() -> None:
    h = History()
    h.submit("a1", ANN, gpus=12)
    h.submit("b1", BOB, gpus=8)
    h.admit("a1", available=16, quota=16, in_use=0)
    h.confirm("a1")
    # Fireworks still reports 0 in use, but ftq's own a1 holds 12 of the 16 GPUs.
    pos = h.admit("b1", available=16, quota=16, in_use=0)
    assert found(h) == [(BUDGET, (pos,))]


def test_budget_allows_what_the_pass_subtracted() -> None:
    h = History()
    h.submit("a1", ANN, gpus=8)
    h.submit("b1", BOB, gpus=8)
    h.admit("a1", available=16, quota=16, in_use=0)
    h.admit("b1", available=8, quota=16, in_use=0)  # same pass: 16 - 8 already admitted
    assert found(h) == []


def test_strict_fifo_flags_a_job_admitted_past_an_earlier_eligible_one() -> None:
    h = History()
    big = h.submit("a1", ANN, gpus=8)
    h.submit("b1", BOB, gpus=4)
    pos = h.admit("b1", available=4)
    assert found(h) == [(FIFO, (big, pos))]
    (violation,) = audit(h.rows, default_cap=1)
    assert violation.job_id == "b1"
    assert "a1" in violation.message


def test_backfill_only_flags_earlier_jobs_that_fit() -> None:
    h = History()
    h.submit("a1", ANN, gpus=8)
    h.submit("b1", BOB, gpus=4)
    h.admit("b1", available=4, policy="backfill")
    assert found(h) == []
    h2 = History()
    small = h2.submit("a1", ANN, gpus=2)
    h2.submit("b1", BOB, gpus=4)
    pos = h2.admit("b1", available=4, policy="backfill")
    assert found(h2) == [(FIFO, (small, pos))]


def test_fifo_skips_users_at_their_cap_and_unknown_policies() -> None:
    h = History()
    h.submit("a0", ANN)
    h.admit("a0", available=16)
    h.submit("a1", ANN)  # ann is at her cap: a1 cannot go first
    h.submit("b1", BOB)
    h.admit("b1", available=12, in_use=4)
    assert found(h) == []
    h.submit("c1", CAT)
    h.user("dan@x.com")
    h.submit("d1", "dan@x.com")
    h.admit("d1", available=8, in_use=8, policy="fair-share")
    assert found(h) == []


def test_fifo_a_returned_job_keeps_its_original_place() -> None:
    h = History()
    first = h.submit("a1", ANN)
    h.submit("b1", BOB)
    h.admit("a1", available=16)
    h.requeue("a1")
    pos = h.admit("b1", available=16)
    assert found(h) == [(FIFO, (first, pos))]


def test_fifo_swapped_admissions_with_room_for_one() -> None:
    def history(order: tuple[str, str]) -> tuple[History, int, int]:
        h = History()
        early = h.submit("a1", ANN, gpus=8)
        h.submit("b1", BOB, gpus=8)
        first = h.admit(order[0], available=8, quota=8)
        h.confirm(order[0])
        h.succeed(order[0])
        h.admit(order[1], available=8, quota=8)
        return h, early, first

    assert found(history(("a1", "b1"))[0]) == []
    swapped, early, first = history(("b1", "a1"))
    assert found(swapped) == [(FIFO, (early, first))]


def test_exactly_once_one_fireworks_id_per_job() -> None:
    h = History()
    h.submit("a1", ANN)
    first = h.admit("a1", available=16)
    h.requeue("a1")
    h.admit("a1", available=16)  # the same id again: fine
    h.requeue("a1")
    again = h.admit("a1", available=16, fireworks_id="ftq-a1-retry")
    assert found(h) == [(EXACTLY_ONCE, (first, again))]


def test_exactly_once_no_shared_fireworks_id() -> None:
    h = History()
    h.submit("a1", ANN)
    h.submit("b1", BOB)
    first = h.admit("a1", available=16)
    second = h.admit("b1", available=12, in_use=4, fireworks_id="ftq-a1")
    assert found(h) == [(EXACTLY_ONCE, (first, second))]


def test_state_machine_first_event_must_be_submitted() -> None:
    h = History()
    h.submit("a1", ANN)
    h.admit("a1", available=16)
    rows = [r for r in h.rows if r.type != "job.submitted"]
    violations = audit(renumbered(rows), default_cap=1)
    assert {(v.invariant, v.job_id) for v in violations} == {(STATE_MACHINE, "a1")}
    assert any("first event" in v.message for v in violations)
    assert any("version 2, expected 1" in v.message for v in violations)


def test_state_machine_nothing_after_a_terminal_state() -> None:
    h = History()
    h.submit("a1", ANN)
    done = h.cancel("a1")
    late = h.admit("a1", available=16)
    assert found(h) == [(STATE_MACHINE, (done, late))]


def test_state_machine_admitted_only_with_an_admission_open() -> None:
    h = History()
    submitted = h.submit("a1", ANN)
    bad = h.append("a1", Admitted(at=h.now()))
    assert found(h) == [(STATE_MACHINE, (submitted, bad))]
    h2 = History()
    h2.submit("a1", ANN)
    h2.admit("a1", available=16)
    h2.confirm("a1")
    again = h2.confirm("a1")
    assert found(h2) == [(STATE_MACHINE, (again - 1, again))]


def test_state_machine_observations_only_once_admitted() -> None:
    h = History()
    h.submit("a1", ANN)
    opened = h.admit("a1", available=16)
    bad = h.append("a1", FireworksStateObserved(at=h.now(), fireworks_state="JOB_STATE_RUNNING"))
    assert found(h) == [(STATE_MACHINE, (opened, bad))]


def test_state_machine_duplicate_admission() -> None:
    h = History()
    h.submit("a1", ANN)
    first = h.admit("a1", available=16)
    second = h.admit("a1", available=16)
    assert found(h) == [(STATE_MACHINE, (first, second))]


def test_state_machine_stream_versions_are_contiguous() -> None:
    h = History()
    h.submit("a1", ANN)
    h.admit("a1", available=16)
    rows = list(h.rows)
    rows[-1] = msgspec.structs.replace(rows[-1], stream_version=3)
    assert [(v.invariant, v.positions) for v in audit(rows, default_cap=1)] == [
        (STATE_MACHINE, (rows[-1].position,))
    ]


def test_state_machine_submitted_must_name_its_stream() -> None:
    h = History()
    h.submit("a1", ANN)
    rows = list(h.rows)
    event = msgspec.json.decode(rows[-1].data, type=JobSubmitted)
    data = encode(msgspec.structs.replace(event, job_id="other"))
    rows[-1] = msgspec.structs.replace(rows[-1], data=data)
    assert [(v.invariant, v.job_id) for v in audit(rows, default_cap=1)] == [(STATE_MACHINE, "a1")]


def test_an_undecodable_row_is_reported() -> None:
    h = History()
    h.submit("a1", ANN)
    rows = [*h.rows[:-1], msgspec.structs.replace(h.rows[-1], type="job.teleported")]
    assert audit(rows, default_cap=1) == [
        Violation(LOG, (rows[-1].position,), None, "unknown event type 'job.teleported'")
    ]


# --- property: histories made by decide/evolve and the real planner pass; a mutation fails ---

QUOTA = 16
EMAILS = (ANN, BOB, CAT)


class _Simulation:
    """Random commands through `decide`/`evolve`; admissions planned from the model's state."""

    def __init__(self, policy: str) -> None:
        self.h = History()
        self.policy = policy
        self.jobs: dict[str, JobState] = {}
        self.caps: dict[str, int] = {}
        for email in EMAILS:
            self.h.user(email)

    def run(self, job_id: str, command: JobCommand) -> None:
        state = self.jobs.get(job_id, initial_state())
        for event in decide(command, state):
            self.h.append(job_id, event)
            state = evolve(state, event)
        self.jobs[job_id] = state

    def pick(self, data: st.DataObject, status: str, is_open: bool | None = None) -> str | None:
        ids = [
            j
            for j, s in self.jobs.items()
            if s.status == status and (is_open is None or s.admission_open == is_open)
        ]
        return data.draw(st.sampled_from(ids)) if ids else None

    def tick(self, external: int) -> None:
        running = [s for s in self.jobs.values() if s.status == "PROGRESS"]
        progress: dict[str, int] = {}
        for s in running:
            progress[s.user_id] = progress.get(s.user_id, 0) + 1
        in_use = sum(s.gpu_count for s in running) + external
        queue = [
            Job(j, s.user_id, s.created_at, s.gpu_count)  # type: ignore[arg-type]
            for j, s in self.jobs.items()
            if s.status == "QUEUED"
        ]
        now = self.h.now()
        progress_jobs = [
            Running(s.job_id, s.user_id, s.gpu_count, s.started_at or now, now) for s in running
        ]
        limits = Limits(user_caps={(u, "small"): c for u, c in self.caps.items()})
        decided = plan(
            queue, progress_jobs, {"h200": QUOTA - in_use}, limits, Policy(self.policy), now
        )
        for a in decided.admit:
            reason = AdmissionReason(
                policy=self.policy,
                quota=QUOTA,
                in_use=in_use,
                available=a.available_before,
                queue_position=a.queue_position,
            )
            fw = f"ftq-{a.job.job_id}"
            self.run(
                a.job.job_id,
                StartAdmission(
                    at=self.h.now(), fireworks_job_id=fw, fireworks_job_name=fw, reason=reason
                ),
            )

    def step(self, data: st.DataObject) -> None:
        at = self.h.now()
        action = data.draw(st.sampled_from(ACTIONS))
        if action == "submit":
            email = data.draw(st.sampled_from(EMAILS))
            job_id = f"j{len(self.jobs) + 1:03d}"
            gpus = data.draw(st.sampled_from((1, 2, 4, 8, 16)))
            self.run(
                job_id,
                SubmitJob(
                    at=at,
                    job_id=job_id,
                    user_id=self.h.users[email],
                    user_email=email,
                    kind="SFT",
                    display_name=None,
                    gpu_count=gpus,
                    fireworks_payload={},
                ),
            )
        elif action == "tick":
            self.tick(data.draw(st.integers(0, 4)))
        elif action == "cap":
            email = data.draw(st.sampled_from(EMAILS))
            cap = data.draw(st.integers(0, 2))
            self.caps[self.h.users[email]] = cap
            self.h.set_cap(email, cap)
        elif action in ("confirm", "quota", "reject") and (
            job := self.pick(data, "PROGRESS", True)
        ):
            command: JobCommand = {
                "confirm": ConfirmAdmission(at=at),
                "quota": ReturnToQueue(at=at, message="quota"),
                "reject": RejectAdmission(at=at, message="bad payload", status=400),
            }[action]
            self.run(job, command)
        elif action == "observe" and (job := self.pick(data, "PROGRESS", False)):
            state = data.draw(
                st.sampled_from(
                    (
                        "JOB_STATE_RUNNING",
                        "JOB_STATE_COMPLETED",
                        "JOB_STATE_FAILED",
                        "JOB_STATE_CANCELLED",
                    )
                )
            )
            self.run(
                job,
                ObserveFireworks(
                    at=at,
                    fireworks_state=state,
                    progress=data.draw(st.sampled_from((None, 10.0, 60.0))),
                ),
            )
        elif action == "cancel" and (
            job := self.pick(data, data.draw(st.sampled_from(("QUEUED", "PROGRESS"))))
        ):
            self.run(job, RequestCancel(at=at, by="admin"))
            if self.jobs[job].status == "PROGRESS" and not self.jobs[job].admission_open:
                self.run(job, ConfirmCancelled(at=at))


ACTIONS = (
    "submit",
    "submit",
    "tick",
    "tick",
    "cap",
    "confirm",
    "quota",
    "reject",
    "observe",
    "observe",
    "cancel",
)


@st.composite
def simulations(draw: st.DrawFn) -> _Simulation:
    sim = _Simulation(draw(st.sampled_from(("strict-fifo", "backfill"))))
    data = draw(st.data())
    for _ in range(draw(st.integers(5, 60))):
        sim.step(data)
    return sim


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simulations())
def test_histories_made_by_decide_and_the_planner_pass(sim: _Simulation) -> None:
    assert audit(sim.h.rows, default_cap=1) == []


def _mutate(rows: list[RecordedEvent], index: int, event: AnyEvent) -> list[RecordedEvent]:
    out = list(rows)
    out[index] = msgspec.structs.replace(out[index], data=encode(event))
    return out


def _decoded(r: RecordedEvent) -> AnyEvent:
    return decode(r.type, r.schema_version, r.data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simulations(), st.sampled_from(("drop", "duplicate", "steal", "late", "budget")), st.data())
def test_a_single_mutation_is_caught(sim: _Simulation, mutation: str, data: st.DataObject) -> None:
    rows = sim.h.rows
    starts = [i for i, r in enumerate(rows) if r.type == "job.admission_started"]
    if mutation == "drop":
        versions = {r.stream_id: r.stream_version for r in rows}
        candidates = [
            i for i, r in enumerate(rows) if r.type == "job.submitted" and versions[r.stream_id] > 1
        ]
        assume(candidates)
        i = data.draw(st.sampled_from(candidates))
        mutated, expected = renumbered(rows[:i] + rows[i + 1 :]), STATE_MACHINE
    elif mutation == "duplicate":  # the same admission recorded twice in a row
        assume(starts)
        i = data.draw(st.sampled_from(starts))
        later = [
            msgspec.structs.replace(r, stream_version=r.stream_version + 1)
            if r.stream_id == rows[i].stream_id
            else r
            for r in rows[i + 1 :]
        ]
        mutated, expected = renumbered([*rows[: i + 1], rows[i], *later]), STATE_MACHINE
    elif mutation == "steal":  # an admission reuses another job's Fireworks id
        owners = {rows[i].stream_id: i for i in starts}
        assume(len(owners) >= 2)
        i, j = data.draw(st.permutations(sorted(owners.values())))[:2]
        event = _decoded(rows[j])
        assert isinstance(event, AdmissionStarted)
        stolen = msgspec.structs.replace(event, fireworks_job_id=f"ftq-{rows[i].stream_id}")
        mutated, expected = _mutate(rows, j, stolen), EXACTLY_ONCE
    elif mutation == "late":  # news recorded after a terminal state
        finished = [j for j, s in sim.jobs.items() if s.terminal]
        assume(finished)
        job = data.draw(st.sampled_from(finished))
        sim.h.append(
            job, FireworksStateObserved(at=sim.h.now(), fireworks_state="JOB_STATE_RUNNING")
        )
        mutated, expected = sim.h.rows, STATE_MACHINE
    else:  # an admission that did not fit the headroom it recorded
        assume(starts)
        i = data.draw(st.sampled_from(starts))
        event = _decoded(rows[i])
        assert isinstance(event, AdmissionStarted)
        gpus = sim.jobs[rows[i].stream_id].gpu_count
        reason = msgspec.structs.replace(event.reason, available=gpus - 1)
        mutated, expected = _mutate(rows, i, msgspec.structs.replace(event, reason=reason)), BUDGET
    assert expected in {v.invariant for v in audit(mutated, default_cap=1)}
