"""What `wait_for_job` reports: MCP progress values that only ever grow (the protocol's
rule), reach 100 exactly when the job ends, and a message whenever what changed is news."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.mcp.progress import JobProgress, Report

QUEUED_JOB: dict[str, Any] = {
    "state": "QUEUED",
    "progress": None,
    "fireworks_state": None,
    "queue_position": 2,
    "pending_reason": "needs 8 GPUs, 4 free",
    "eta": "2030-01-01T10:00:00Z",
}
TYPES = [
    "job.submitted",
    "job.admission_started",
    "job.admitted",
    "job.fireworks_state_observed",
    "job.returned_to_queue",
    "job.cancel_requested",
    "job.succeeded",
    "job.failed",
    "job.rejected",
    "job.cancelled",
]
events = st.lists(
    st.tuples(
        st.sampled_from(TYPES),
        st.fixed_dictionaries(
            {},
            optional={
                "progress": st.one_of(st.none(), st.floats(-50, 150), st.integers(-5, 500)),
                "fireworks_state": st.sampled_from(["JOB_STATE_RUNNING", "JOB_STATE_PENDING"]),
                "message": st.sampled_from(["", "bad dataset", "Fireworks refused: 503"]),
            },
        ),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_values_only_grow_and_reach_100_only_at_the_end(history: list[Any]) -> None:
    progress = JobProgress(QUEUED_JOB)
    reports = [progress.report()]
    for type_, data in history:
        reports.append(progress.observe(type_, data))
    sent = [r for r in reports if r is not None]
    values = [r.progress for r in sent]
    assert values == sorted(set(values))  # strictly increasing
    assert all(0 <= v <= 100 for v in values)
    assert (100 in values) == progress.ended
    if progress.ended:
        assert values[-1] == 100


def test_a_job_s_life_in_notifications() -> None:
    progress = JobProgress(QUEUED_JOB)
    first = progress.report()
    assert first == Report(
        0.0, "QUEUED: position 2; needs 8 GPUs, 4 free; eta 2030-01-01T10:00:00Z"
    )
    assert progress.report() is None  # nothing new
    admitted = progress.observe("job.admission_started", {"fireworks_job_name": "x"})
    assert admitted == Report(0.01, "PROGRESS")  # same percent: moved on by a hundredth
    running = {"fireworks_state": "JOB_STATE_RUNNING", "progress": 50}
    assert progress.observe("job.fireworks_state_observed", running) == Report(
        49.5, "PROGRESS 50% (Fireworks: JOB_STATE_RUNNING)"
    )
    assert progress.observe("job.fireworks_state_observed", running) is None
    done = progress.observe("job.succeeded", {"fireworks_state": "JOB_STATE_COMPLETED"})
    assert done == Report(100.0, "SUCCESS (Fireworks: JOB_STATE_COMPLETED)")
    assert progress.observe("job.failed", {"message": "late"}) is None  # nothing after 100


def test_a_failure_says_why() -> None:
    progress = JobProgress({"state": "PROGRESS", "progress": 30, "fireworks_state": None})
    assert progress.report() == Report(29.7, "PROGRESS 30%")
    failed = progress.observe("job.failed", {"message": "bad dataset"})
    assert failed == Report(100.0, "FAIL: bad dataset")


def test_a_requeued_job_shows_its_new_place() -> None:
    progress = JobProgress({"state": "PROGRESS", "progress": 10, "fireworks_state": None})
    progress.report()
    back = progress.observe("job.returned_to_queue", {"message": "Fireworks refused: 503"})
    assert back is not None and back.message == "QUEUED: Fireworks refused: 503"
    assert back.progress > 9.9
    fresh = progress.refreshed(QUEUED_JOB | {"queue_position": 1, "pending_reason": "next"})
    assert fresh is not None and fresh.message.startswith("QUEUED: position 1; next")
