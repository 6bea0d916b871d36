"""Requeue in the domain: what a requeued job keeps, and which jobs may be requeued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.domain.job import JobState, decide, fold
from events.domain.job_commands import RequestCancel, SubmitJob
from events.domain.rejections import InvalidState, UnknownStream
from events.domain.requeue import _NOT_COPIED, COPIED, requeue

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SUBMIT = SubmitJob(
    at=T0,
    job_id="old",
    user_id="u1",
    user_email="a@example.com",
    kind="DPO",
    display_name="sweep",
    gpu_count=2,
    fireworks_payload={"dataset": "d", "trainingConfig": {"baseModel": "m"}},
    idempotency_key="k",
    request_fingerprint="f",
    max_runtime_minutes=90,
)


def state_after(*commands: object) -> JobState:
    state = JobState()
    for command in commands:
        state = fold(decide(command, state), state)  # type: ignore[arg-type]
    return state


def test_every_submit_field_is_copied_or_deliberately_not() -> None:
    """A new submit-time field must be kept on the job state under its own name to be copied
    by requeue; this fails when one is added to SubmitJob alone."""
    fields = set(SubmitJob.__struct_fields__)
    assert fields - _NOT_COPIED == set(COPIED)
    assert {"user_id", "user_email", "kind", "fireworks_payload", "gpu_count"} <= set(COPIED)
    assert "max_runtime_minutes" in COPIED


def test_a_cancelled_job_is_submitted_again_with_a_link_and_a_new_identity() -> None:
    old = state_after(SUBMIT, RequestCancel(at=T0, by="a@example.com"))
    later = T0 + timedelta(hours=1)
    command = requeue(old, "new", later)
    assert (command.job_id, command.at, command.requeued_from) == ("new", later, "old")
    assert (command.idempotency_key, command.request_fingerprint) == (None, None)
    for name in COPIED:
        assert getattr(command, name) == getattr(SUBMIT, name), name
    new = state_after(command)
    assert (new.status, new.requeued_from, new.max_runtime_minutes) == ("QUEUED", "old", 90)


def test_only_failed_or_cancelled_jobs_are_requeued() -> None:
    with pytest.raises(InvalidState, match="QUEUED"):
        requeue(state_after(SUBMIT), "new", T0)
    with pytest.raises(UnknownStream):
        requeue(JobState(), "new", T0)
