"""The decider record and the type → decider table, with no database: every event type has
exactly one aggregate, each aggregate's rules are the functions its record names, and the
slot-freeing rule (which takes the admission gate) is the domain's."""

from __future__ import annotations

import pytest

from events.domain.aggregates import BY_EVENT_TYPE, DECIDERS, is_job_event
from events.domain.codec import EVENT_TYPES
from events.domain.directory import (
    SCHEDULER,
    USER,
    AddUser,
    IssueKey,
    PauseScheduler,
    SetUserCap,
)
from events.domain.directory_events import SCHEDULER_STREAM, UserCapSet
from events.domain.fireworks_states import is_final, is_leaving, is_live
from events.domain.job import JOB, JobState
from events.domain.job_commands import (
    ConfirmAdmission,
    ConfirmCancelled,
    ObserveFireworks,
    RequestCancel,
    StartAdmission,
    SubmitJob,
)
from tests.unit.test_job_decider import REASON, T0

JOB_ID = "0b7c4cc0-5f5e-4b8e-9d6e-6f1f3c0d2a11"


def _running() -> JobState:
    submit = SubmitJob(
        at=T0, job_id=JOB_ID, user_id="u", user_email="a@x.io", kind="SFT",
        display_name=None, gpu_count=2, fireworks_payload={},
    )  # fmt: skip
    start = StartAdmission(at=T0, fireworks_job_id=JOB_ID, fireworks_job_name="n", reason=REASON)
    state = JOB.initial
    for command in (submit, start, ConfirmAdmission(at=T0, fireworks_state="JOB_STATE_RUNNING")):
        state = JOB.fold(JOB.decide(command, state), state)
    return state


def test_every_event_type_belongs_to_exactly_one_decider() -> None:
    assert set(BY_EVENT_TYPE) == set(EVENT_TYPES)
    owned = [t for d in DECIDERS for t in d.event_types]
    assert len(owned) == len(set(owned))
    assert all(is_job_event(t) == t.startswith("job.") for t in EVENT_TYPES)
    assert BY_EVENT_TYPE.get("job.from_a_newer_ftq") is None and not is_job_event("job.x")


def test_stream_id_rule_of_each_aggregate() -> None:
    assert JOB.stream_id(JOB_ID) == JOB_ID
    assert USER.stream_id(" Ann@X.io ") == "user:ann@x.io"
    assert SCHEDULER.stream_id("anything") == SCHEDULER_STREAM
    user = USER.fold(USER.decide(AddUser(at=T0, user_id="u", email="Ann@X.io"), USER.initial))
    assert USER.stream_id(USER.key(user)) == "user:ann@x.io"
    assert JOB.key(_running()) == JOB_ID


def test_only_leaving_progress_frees_a_slot() -> None:
    running = _running()
    asked = JOB.fold(JOB.decide(RequestCancel(at=T0, by="a"), running), running)
    assert not JOB.frees_a_slot(running, asked, [])  # still PROGRESS
    events = JOB.decide(ConfirmCancelled(at=T0), asked)
    done = JOB.fold(events, asked)
    assert JOB.is_terminal(done) and not JOB.is_terminal(asked)
    assert JOB.frees_a_slot(asked, done, events)


def test_a_cap_change_takes_the_gate_a_key_does_not() -> None:
    user = USER.fold(USER.decide(AddUser(at=T0, user_id="u", email="a@x.io"), USER.initial))
    cap = USER.decide(SetUserCap(at=T0, cap=3), user)
    assert isinstance(cap[0], UserCapSet) and USER.frees_a_slot(user, USER.fold(cap, user), cap)
    key = USER.decide(IssueKey(at=T0, key_id="k", key_hash="h"), user)
    assert not USER.frees_a_slot(user, USER.fold(key, user), key)
    paused = SCHEDULER.decide(PauseScheduler(at=T0, by="ops"), SCHEDULER.initial)
    assert not SCHEDULER.frees_a_slot(SCHEDULER.initial, SCHEDULER.fold(paused), paused)


@pytest.mark.parametrize(
    ("fireworks_state", "progress", "accelerator_seconds", "news"),
    [
        ("JOB_STATE_RUNNING", 10.0, None, False),
        ("JOB_STATE_RUNNING", None, None, False),  # no progress reported: nothing new
        ("JOB_STATE_RUNNING", 20.0, None, True),
        ("JOB_STATE_RUNNING", 10.0, 30.0, True),  # accounting figures are news too
        ("JOB_STATE_WRITING_RESULTS", 10.0, None, True),
        ("JOB_STATE_COMPLETED", 10.0, None, True),
        ("JOB_STATE_DELETING", 10.0, None, True),  # a new state, even on its way out
    ],
)
def test_whether_an_observation_is_news(
    fireworks_state: str, progress: float | None, accelerator_seconds: float | None, news: bool
) -> None:
    known = JobState(
        job_id=JOB_ID, status="PROGRESS", fireworks_state="JOB_STATE_RUNNING", progress=10.0
    )
    seen = ObserveFireworks(
        at=T0,
        fireworks_state=fireworks_state,
        progress=progress,
        accelerator_seconds=accelerator_seconds,
    )
    assert JOB.changes(seen, known) is news


@pytest.mark.parametrize(
    ("fireworks_state", "final", "leaving"),
    [
        ("JOB_STATE_RUNNING", False, False),
        ("JOB_STATE_CANCELLING", False, True),
        ("JOB_STATE_DELETING", False, True),
        ("JOB_STATE_CANCELLED", True, False),
        ("JOB_STATE_COMPLETED", True, False),
        ("JOB_STATE_EXPIRED", True, False),
        ("JOB_STATE_SOMETHING_NEW", False, False),  # unknown: still running
    ],
)
def test_fireworks_state_predicates(fireworks_state: str, final: bool, leaving: bool) -> None:
    assert is_final(fireworks_state) is final
    assert is_leaving(fireworks_state) is leaving
    assert is_live(fireworks_state) is (not final and not leaving)
