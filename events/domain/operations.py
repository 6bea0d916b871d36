"""The operations record of a job (the `job_operations` projection): its runtime limit, the
job it was requeued from, and, while it runs on Fireworks, what the leader's limit and stuck
checks need. Pure: a function of the folded job state."""

from __future__ import annotations

from datetime import datetime

import msgspec

from events.domain.job import JobState


class JobOperations(msgspec.Struct, frozen=True, kw_only=True):
    """One row of `job_operations`; `running`: admitted on Fireworks and not finished."""

    job_id: str
    max_runtime_minutes: int | None = None
    requeued_from: str | None = None
    running: bool = False
    admitted_at: datetime | None = None
    cancel_requested: bool = False
    fireworks_state: str | None = None
    fireworks_state_since: datetime | None = None
    last_change_at: datetime | None = None
    stuck_reason: str | None = None
    stuck_since: datetime | None = None


def operations_of(state: JobState) -> JobOperations | None:
    """The record of a folded job; None when there is nothing to keep (no limit of its own,
    not requeued, not running)."""
    running = state.status == "PROGRESS" and state.admitted_at is not None
    running = running and not state.admission_open
    if not running and state.max_runtime_minutes is None and state.requeued_from is None:
        return None
    if not running:
        return JobOperations(
            job_id=state.job_id,
            max_runtime_minutes=state.max_runtime_minutes,
            requeued_from=state.requeued_from,
        )
    return JobOperations(
        job_id=state.job_id,
        max_runtime_minutes=state.max_runtime_minutes,
        requeued_from=state.requeued_from,
        running=True,
        admitted_at=state.admitted_at,
        cancel_requested=state.cancel_requested_by is not None,
        fireworks_state=state.fireworks_state,
        fireworks_state_since=state.fireworks_state_since,
        last_change_at=state.last_change_at,
        stuck_reason=state.stuck_reason,
        stuck_since=state.stuck_since,
    )
