"""Requeue: a new job made from one that ended FAIL or CANCELLED. Pure.

The new job is the old one submitted again: the same owner, kind, payload, GPUs and every
other submit-time setting the job state holds (its runtime limit, and whatever later submit
fields a job keeps under the same name), linked back by `requeued_from`. It gets a new id and
its own `created_at`, so it joins the back of the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from events.domain.job import JobState
from events.domain.job_commands import SubmitJob
from events.domain.rejections import InvalidState, UnknownStream

REQUEUABLE: Final = frozenset({"FAIL", "CANCELLED"})
# Submit fields not carried over: the new job's own identity, time and request, and its link.
# `after` (pipeline dependencies) is not carried either: they were settled for the old job.
_NOT_COPIED: Final = frozenset(
    {"at", "job_id", "idempotency_key", "request_fingerprint", "requeued_from", "after"}
)
COPIED: Final = tuple(
    name
    for name in SubmitJob.__struct_fields__
    if name not in _NOT_COPIED and name in JobState.__struct_fields__
)


def requeue(old: JobState, job_id: str, at: datetime) -> SubmitJob:
    """The submit of the job that requeues `old`; refuses a job that did not fail or get
    cancelled (QUEUED, PROGRESS and SUCCESS: InvalidState)."""
    if old.status is None:
        raise UnknownStream("no such job")
    if old.status not in REQUEUABLE:
        raise InvalidState(f"job is {old.status}: only FAIL or CANCELLED jobs can be requeued")
    copied: dict[str, Any] = {name: getattr(old, name) for name in COPIED}
    return SubmitJob(at=at, job_id=job_id, requeued_from=old.job_id, **copied)
