"""Runtime limits and stuck detection in the job decider, with no database: when each is
due, that each is decided once, and what the events record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.domain.job import JobState, decide, evolve, fold
from events.domain.job_commands import (
    ConfirmAdmission,
    ConfirmCancelled,
    DetectStuck,
    EnforceRuntimeLimit,
    FireworksJobGone,
    ObserveFireworks,
    RequestCancel,
    StartAdmission,
    SubmitJob,
)
from events.domain.job_events import (
    AdmissionReason,
    Cancelled,
    CancelRequested,
    JobEvent,
    StuckCleared,
    StuckDetected,
)
from events.domain.job_limits import runtime_limit, stuck_reason
from events.domain.operations import operations_of

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REASON = AdmissionReason(policy="strict-fifo", quota=8, in_use=0, available=8, queue_position=1)
STUCK = {"stuck_minutes": 60.0, "stalled_minutes": 240.0}


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def run(state: JobState, *commands: object) -> tuple[JobState, list[JobEvent]]:
    events: list[JobEvent] = []
    for command in commands:
        new = decide(command, state)  # type: ignore[arg-type]
        events += new
        state = fold(new, state)
    return state, events


def admitted(
    max_runtime: int | None = None, fireworks_state: str = "JOB_STATE_CREATING"
) -> JobState:
    """A job admitted at T0 (Fireworks answered the create with `fireworks_state`)."""
    submit = SubmitJob(
        at=T0 - timedelta(minutes=5),
        job_id="j1",
        user_id="u1",
        user_email="a@example.com",
        kind="SFT",
        display_name=None,
        gpu_count=4,
        fireworks_payload={"dataset": "d", "baseModel": "m"},
        max_runtime_minutes=max_runtime,
    )
    start = StartAdmission(
        at=T0 - timedelta(seconds=1), fireworks_job_id="j1", fireworks_job_name="n", reason=REASON
    )
    state, _ = run(
        JobState(), submit, start, ConfirmAdmission(at=T0, fireworks_state=fireworks_state)
    )
    return state


# -- runtime limits -------------------------------------------------------------------


def test_own_limit_wins_over_the_default_and_none_means_no_limit() -> None:
    assert runtime_limit(30, 600.0) is not None and runtime_limit(30, 600.0).source == "job"  # type: ignore[union-attr]
    default = runtime_limit(None, 90.0)
    assert default is not None and (default.minutes, default.source) == (
        90.0,
        "FTQ_MAX_RUNTIME_HOURS",
    )
    assert runtime_limit(None, None) is None


def test_nothing_before_the_limit_then_one_cancel_request_recording_why() -> None:
    state = admitted(max_runtime=30)
    assert decide(EnforceRuntimeLimit(at=minutes(29.9), default_minutes=600.0), state) == []
    state, events = run(state, EnforceRuntimeLimit(at=minutes(30), default_minutes=600.0))
    (event,) = events
    assert isinstance(event, CancelRequested)
    assert (event.by, event.reason) == ("ftq", "max runtime exceeded (30 min)")
    assert (event.limit_minutes, event.limit_source, event.admitted_at) == (30, "job", T0)
    # decided once: a second check (another tick, another leader) adds nothing
    assert decide(EnforceRuntimeLimit(at=minutes(31), default_minutes=None), state) == []
    state, events = run(
        state, ConfirmCancelled(at=minutes(31), fireworks_state="JOB_STATE_CANCELLING")
    )
    (cancelled,) = events
    assert isinstance(cancelled, Cancelled)
    assert (state.status, state.error) == ("CANCELLED", "max runtime exceeded (30 min)")
    assert cancelled.by == "ftq"


def test_the_default_applies_without_an_own_limit_and_counts_from_admission() -> None:
    state = admitted()
    assert decide(EnforceRuntimeLimit(at=minutes(120), default_minutes=None), state) == []
    # submitted 5 minutes before admission: those minutes do not count
    assert decide(EnforceRuntimeLimit(at=minutes(89), default_minutes=90.0), state) == []
    state, (event,) = run(state, EnforceRuntimeLimit(at=minutes(90), default_minutes=90.0))
    assert isinstance(event, CancelRequested) and event.limit_source == "FTQ_MAX_RUNTIME_HOURS"
    assert event.reason == "max runtime exceeded (90 min)"


def test_a_limit_cancel_that_ends_another_way_still_says_why() -> None:
    state, _ = run(admitted(max_runtime=1), EnforceRuntimeLimit(at=minutes(2)))
    gone, _ = run(state, FireworksJobGone(at=minutes(3)))
    assert (gone.status, gone.error) == ("CANCELLED", "max runtime exceeded (1 min)")
    seen, _ = run(state, ObserveFireworks(at=minutes(3), fireworks_state="JOB_STATE_CANCELLED"))
    assert (seen.status, seen.error) == ("CANCELLED", "max runtime exceeded (1 min)")


def test_no_limit_while_queued_open_or_already_cancelling() -> None:
    state = admitted(max_runtime=1)
    user, _ = run(state, RequestCancel(at=minutes(0.5), by="a@example.com"))
    assert decide(EnforceRuntimeLimit(at=minutes(5)), user) == []  # the user's cancel stands
    done, _ = run(user, ConfirmCancelled(at=minutes(1)))
    assert done.error is None and done.status == "CANCELLED"
    assert decide(EnforceRuntimeLimit(at=minutes(5)), done) == []  # terminal: nothing


# -- stuck ----------------------------------------------------------------------------


@pytest.mark.parametrize("waiting", ["JOB_STATE_CREATING", "JOB_STATE_PENDING", "JOB_STATE_PAUSED"])
def test_waiting_longer_than_the_stuck_threshold_is_flagged_once(waiting: str) -> None:
    state = admitted(fireworks_state="JOB_STATE_VALIDATING")
    state, _ = run(state, ObserveFireworks(at=minutes(1), fireworks_state=waiting))
    assert decide(DetectStuck(at=minutes(61), **STUCK), state) == []  # 60 min exactly
    state, (event,) = run(state, DetectStuck(at=minutes(61.5), **STUCK))
    assert isinstance(event, StuckDetected)
    assert event.fireworks_state == waiting and event.since == minutes(1)
    assert event.reason.startswith(waiting.removeprefix("JOB_STATE_") + " on Fireworks for 60 min")
    assert state.stuck_reason == event.reason
    assert decide(DetectStuck(at=minutes(500), **STUCK), state) == []  # once per episode


def test_running_with_no_change_is_flagged_after_the_stalled_threshold() -> None:
    state, _ = run(
        admitted(),
        ObserveFireworks(at=minutes(1), fireworks_state="JOB_STATE_RUNNING", progress=10.0),
        ObserveFireworks(at=minutes(100), fireworks_state="JOB_STATE_RUNNING", progress=20.0),
    )
    assert decide(DetectStuck(at=minutes(339), **STUCK), state) == []  # 239 min since 20 %
    _, (event,) = run(state, DetectStuck(at=minutes(341), **STUCK))
    assert isinstance(event, StuckDetected) and event.since == minutes(100)
    assert "no change of state or progress on Fireworks for 241 min while RUNNING" in event.reason


def test_an_unknown_state_counts_as_running_and_can_stall() -> None:
    state, _ = run(admitted(), ObserveFireworks(at=minutes(1), fireworks_state="JOB_STATE_WEIRD"))
    assert state.status == "PROGRESS"
    assert decide(DetectStuck(at=minutes(100), **STUCK), state) == []  # not a waiting state
    _, (event,) = run(state, DetectStuck(at=minutes(242), **STUCK))
    assert isinstance(event, StuckDetected) and "while WEIRD" in event.reason


def test_a_change_on_fireworks_clears_the_flag_and_a_new_episode_can_start() -> None:
    state, _ = run(
        admitted(fireworks_state="JOB_STATE_PENDING"), DetectStuck(at=minutes(61), **STUCK)
    )
    assert state.stuck_reason is not None
    same = ObserveFireworks(at=minutes(70), fireworks_state="JOB_STATE_PENDING")
    assert decide(same, state) == []  # no change: still stuck, nothing recorded
    state, events = run(
        state, ObserveFireworks(at=minutes(80), fireworks_state="JOB_STATE_RUNNING")
    )
    assert [type(e) for e in events][-1] is StuckCleared
    assert state.stuck_reason is None and state.fireworks_state_since == minutes(80)
    state, (again,) = run(state, DetectStuck(at=minutes(80 + 241), **STUCK))
    assert isinstance(again, StuckDetected)  # a second episode


def test_deleted_on_fireworks_ends_the_job_and_the_flag() -> None:
    state, _ = run(
        admitted(fireworks_state="JOB_STATE_PENDING"), DetectStuck(at=minutes(61), **STUCK)
    )
    state, _ = run(state, ObserveFireworks(at=minutes(62), fireworks_state="JOB_STATE_DELETED"))
    assert (state.status, state.stuck_reason) == ("CANCELLED", None)
    assert operations_of(state) is None


def test_the_operations_record_follows_the_state() -> None:
    assert operations_of(JobState()) is None
    state = admitted(max_runtime=30)
    ops = operations_of(state)
    assert ops is not None and ops.running and ops.admitted_at == T0
    assert ops.fireworks_state == "JOB_STATE_CREATING" and ops.fireworks_state_since == T0
    state, _ = run(state, EnforceRuntimeLimit(at=minutes(31)), ConfirmCancelled(at=minutes(31)))
    ops = operations_of(state)
    assert ops is not None and not ops.running and ops.max_runtime_minutes == 30


def test_stuck_reason_needs_a_state() -> None:
    assert stuck_reason(None, None, None, T0, stuck_minutes=1, stalled_minutes=1) is None
    state = evolve(JobState(), decide(SubmitJob(
        at=T0, job_id="j", user_id="u", user_email="e", kind="SFT", display_name=None,
        gpu_count=1, fireworks_payload={}), JobState())[0])  # fmt: skip
    assert decide(DetectStuck(at=minutes(999), **STUCK), state) == []  # QUEUED: never stuck
