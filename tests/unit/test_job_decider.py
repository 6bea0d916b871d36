"""Given/when/then for every job command in every state, with no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.domain.job import GONE_OUTSIDE_FTQ, JobState, decide, evolve, fold, initial_state
from events.domain.job_commands import (
    ConfirmAdmission,
    ConfirmCancelled,
    FireworksJobGone,
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
    Cancelled,
    CancelRequested,
    Failed,
    FireworksStateObserved,
    JobEvent,
    JobSubmitted,
    RejectedByFireworks,
    ReturnedToQueue,
    Succeeded,
)
from events.domain.rejections import AlreadyExists, InvalidState, UnknownStream

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REASON = AdmissionReason(policy="strict-fifo", quota=8, in_use=0, available=8, queue_position=1)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def submit(job_id: str = "j1", gpu_count: int = 4) -> SubmitJob:
    return SubmitJob(
        at=T0,
        job_id=job_id,
        user_id="u1",
        user_email="a@example.com",
        kind="SFT",
        display_name="demo",
        gpu_count=gpu_count,
        fireworks_payload={"dataset": "d", "baseModel": "m"},
    )


def start() -> StartAdmission:
    return StartAdmission(
        at=at(1), fireworks_job_id="j1", fireworks_job_name="accounts/a/x/j1", reason=REASON
    )


def given(*commands: JobCommand) -> JobState:
    state = initial_state()
    for command in commands:
        for event in decide(command, state):
            state = evolve(state, event)
    return state


def when(state: JobState, command: JobCommand) -> list[JobEvent]:
    return decide(command, state)


QUEUED = (submit(),)
OPEN = (*QUEUED, start())
RUNNING = (*OPEN, ConfirmAdmission(at=at(2), fireworks_state="JOB_STATE_CREATING"))
CANCEL_ASKED = (*RUNNING, RequestCancel(at=at(3), by="a@example.com"))


def test_submit_creates_a_queued_job() -> None:
    events = when(initial_state(), submit())
    assert [type(e) for e in events] == [JobSubmitted]
    state = fold(events)
    assert (state.status, state.version, state.gpu_count, state.created_at) == (
        "QUEUED",
        1,
        4,
        T0,
    )


def test_submit_twice_is_refused() -> None:
    with pytest.raises(AlreadyExists):
        when(given(*QUEUED), submit())


def test_submit_with_no_gpus_is_refused() -> None:
    with pytest.raises(InvalidState):
        when(initial_state(), submit(gpu_count=0))


@pytest.mark.parametrize(
    "command", [start(), RequestCancel(at=T0, by="x"), ObserveFireworks(at=T0, fireworks_state="s")]
)
def test_commands_on_a_missing_job_are_refused(command: JobCommand) -> None:
    with pytest.raises(UnknownStream):
        when(initial_state(), command)


def test_admission_starts_progress_and_records_why() -> None:
    state = given(*OPEN)
    assert state.status == "PROGRESS"
    assert state.admission_open
    assert state.started_at == at(1)
    assert state.admission_reason == REASON
    assert state.fireworks_job_id == "j1"


def test_admission_of_a_job_in_progress_is_refused() -> None:
    with pytest.raises(InvalidState):
        when(given(*OPEN), start())


def test_confirm_closes_the_admission_once() -> None:
    events = when(given(*OPEN), ConfirmAdmission(at=at(2), fireworks_state="JOB_STATE_CREATING"))
    assert [type(e) for e in events] == [Admitted]
    assert when(given(*RUNNING), ConfirmAdmission(at=at(3))) == []


def test_quota_refusal_returns_the_job_to_the_queue_at_its_place() -> None:
    events = when(given(*OPEN), ReturnToQueue(at=at(2), message="in use: 8, quota: 8"))
    assert [type(e) for e in events] == [ReturnedToQueue]
    state = given(*OPEN, ReturnToQueue(at=at(2), message="in use: 8, quota: 8"))
    assert (state.status, state.created_at, state.started_at) == ("QUEUED", T0, None)
    assert not state.admission_open


def test_quota_refusal_of_a_cancelled_admission_cancels() -> None:
    state = given(*OPEN, RequestCancel(at=at(2), by="u"))
    assert [type(e) for e in when(state, ReturnToQueue(at=at(3), message="q"))] == [Cancelled]


def test_return_to_queue_needs_an_open_admission() -> None:
    with pytest.raises(InvalidState):
        when(given(*RUNNING), ReturnToQueue(at=at(3), message="q"))


def test_rejection_fails_the_job_with_fireworks_message() -> None:
    state = given(*OPEN, RejectAdmission(at=at(2), message="bad dataset", status=400))
    assert (state.status, state.error, state.completed_at) == ("FAIL", "bad dataset", at(2))
    assert [type(e) for e in when(given(*OPEN), RejectAdmission(at=at(2), message="m"))] == [
        RejectedByFireworks
    ]


def test_observation_is_recorded_only_when_something_changed() -> None:
    running = given(*RUNNING)
    seen = ObserveFireworks(at=at(5), fireworks_state="JOB_STATE_RUNNING", progress=10.0)
    assert [type(e) for e in when(running, seen)] == [FireworksStateObserved]
    again = given(*RUNNING, seen)
    assert when(again, seen) == []
    more = ObserveFireworks(at=at(6), fireworks_state="JOB_STATE_RUNNING", progress=20.0)
    assert [type(e) for e in when(again, more)] == [FireworksStateObserved]


def test_observation_closes_an_open_admission_first() -> None:
    events = when(given(*OPEN), ObserveFireworks(at=at(2), fireworks_state="JOB_STATE_PENDING"))
    assert [type(e) for e in events] == [Admitted, FireworksStateObserved]


@pytest.mark.parametrize(
    ("fireworks_state", "status"),
    [
        ("JOB_STATE_COMPLETED", "SUCCESS"),
        ("JOB_STATE_EARLY_STOPPED", "SUCCESS"),
        ("JOB_STATE_FAILED", "FAIL"),
        ("JOB_STATE_EXPIRED", "FAIL"),
        ("JOB_STATE_CANCELLED", "CANCELLED"),
        ("JOB_STATE_DELETED", "CANCELLED"),
        ("JOB_STATE_ARCHIVED", "CANCELLED"),
        ("JOB_STATE_PAUSED", "PROGRESS"),
        ("JOB_STATE_SOMETHING_NEW", "PROGRESS"),
        ("JOB_STATE_DELETING", "PROGRESS"),
    ],
)
def test_fireworks_states_map_to_ftq_states(fireworks_state: str, status: str) -> None:
    state = given(
        *RUNNING, ObserveFireworks(at=at(9), fireworks_state=fireworks_state, message="m")
    )
    assert state.status == status
    assert state.fireworks_state == fireworks_state


def test_failure_carries_the_fireworks_message() -> None:
    state = given(
        *RUNNING, ObserveFireworks(at=at(9), fireworks_state="JOB_STATE_FAILED", message="OOM")
    )
    assert state.error == "OOM"


def test_success_sets_progress_to_100() -> None:
    state = given(*RUNNING, ObserveFireworks(at=at(9), fireworks_state="JOB_STATE_COMPLETED"))
    assert (state.progress, state.completed_at) == (100.0, at(9))
    assert [
        type(e)
        for e in decide(
            ObserveFireworks(at=at(9), fireworks_state="JOB_STATE_COMPLETED"), given(*RUNNING)
        )
    ] == [FireworksStateObserved, Succeeded]


def test_deleting_after_our_cancel_is_cancelled() -> None:
    state = given(*CANCEL_ASKED, ObserveFireworks(at=at(9), fireworks_state="JOB_STATE_DELETING"))
    assert state.status == "CANCELLED"


def test_gone_on_fireworks_is_cancelled_outside_ftq() -> None:
    state = given(*RUNNING, FireworksJobGone(at=at(9)))
    assert (state.status, state.completed_at) == ("CANCELLED", at(9))
    [event] = decide(FireworksJobGone(at=at(9)), given(*RUNNING))
    assert isinstance(event, Cancelled)
    assert event.reason == GONE_OUTSIDE_FTQ


def test_gone_while_admission_open_is_not_cancelled() -> None:
    """404 on an open admission means 'create again', never 'deleted outside ftq'."""
    with pytest.raises(InvalidState):
        when(given(*OPEN), FireworksJobGone(at=at(2)))


def test_cancel_of_a_queued_job_is_immediate() -> None:
    [event] = when(given(*QUEUED), RequestCancel(at=at(1), by="a@example.com"))
    assert isinstance(event, Cancelled)
    assert given(*QUEUED, RequestCancel(at=at(1), by="x")).status == "CANCELLED"


def test_cancel_of_a_running_job_is_requested_then_confirmed() -> None:
    [event] = when(given(*RUNNING), RequestCancel(at=at(3), by="a@example.com"))
    assert isinstance(event, CancelRequested)
    state = given(*CANCEL_ASKED)
    assert (state.status, state.cancel_requested_by) == ("PROGRESS", "a@example.com")
    assert when(state, RequestCancel(at=at(4), by="again")) == []
    done = given(*CANCEL_ASKED, ConfirmCancelled(at=at(5), fireworks_state="JOB_STATE_CANCELLING"))
    assert (done.status, done.completed_at) == ("CANCELLED", at(5))


def test_confirm_cancel_without_request_is_refused() -> None:
    with pytest.raises(InvalidState):
        when(given(*RUNNING), ConfirmCancelled(at=at(5)))


def test_cancelled_admission_cannot_be_started() -> None:
    with pytest.raises(InvalidState):
        when(given(*QUEUED, RequestCancel(at=at(1), by="x")), start())


TERMINALS = {
    "SUCCESS": (*RUNNING, ObserveFireworks(at=at(9), fireworks_state="JOB_STATE_COMPLETED")),
    "FAIL": (*OPEN, RejectAdmission(at=at(2), message="m")),
    "CANCELLED": (*QUEUED, RequestCancel(at=T0, by="x")),
}


@pytest.mark.parametrize("terminal", sorted(TERMINALS))
@pytest.mark.parametrize(
    "command",
    [
        start(),
        RequestCancel(at=at(10), by="x"),
        ReturnToQueue(at=at(10), message="q"),
        RejectAdmission(at=at(10), message="m"),
        ConfirmAdmission(at=at(10)),
    ],
)
def test_no_way_back_from_a_terminal_state(terminal: str, command: JobCommand) -> None:
    state = given(*TERMINALS[terminal])
    assert state.status == terminal
    with pytest.raises(InvalidState):
        when(state, command)


@pytest.mark.parametrize("terminal", sorted(TERMINALS))
def test_late_fireworks_news_about_a_finished_job_changes_nothing(terminal: str) -> None:
    state = given(*TERMINALS[terminal])
    assert when(state, ObserveFireworks(at=at(10), fireworks_state="JOB_STATE_RUNNING")) == []
    assert when(state, FireworksJobGone(at=at(10))) == []


def test_failed_event_direct() -> None:
    state = evolve(given(*RUNNING), Failed(at=at(7), message="boom"))
    assert (state.status, state.error) == ("FAIL", "boom")


def test_admission_started_is_the_only_way_into_progress() -> None:
    state = evolve(
        given(*QUEUED),
        AdmissionStarted(at=at(1), fireworks_job_id="f", fireworks_job_name="n", reason=REASON),
    )
    assert state.status == "PROGRESS"


def test_a_finished_job_never_keeps_a_live_looking_fireworks_state() -> None:
    """Regression (issue 13 item 10): a PROGRESS job cancelled at 7 % still showed
    JOB_STATE_PENDING. A finish with no newer Fireworks state clears a live one; one seen at
    cancel time (CANCELLING) or a final one is kept; the last progress stays, as history."""
    pending = (*CANCEL_ASKED, ObserveFireworks(at=at(4), fireworks_state="JOB_STATE_PENDING",
                                               progress=7.0))  # fmt: skip
    confirmed = given(*pending, ConfirmCancelled(at=at(5)))
    assert (confirmed.status, confirmed.fireworks_state) == ("CANCELLED", None)
    assert confirmed.progress == 7.0
    gone = given(*RUNNING, FireworksJobGone(at=at(9)))
    assert (gone.status, gone.fireworks_state) == ("CANCELLED", None)
    seen = given(*pending, ConfirmCancelled(at=at(5), fireworks_state="JOB_STATE_CANCELLING"))
    assert seen.fireworks_state == "JOB_STATE_CANCELLING"
    failed = given(*RUNNING, ObserveFireworks(at=at(6), fireworks_state="JOB_STATE_FAILED"))
    assert failed.fireworks_state == "JOB_STATE_FAILED"
