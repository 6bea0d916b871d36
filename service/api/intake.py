"""What POST /jobs and POST /jobs/batch share: the checks of one submission and the command
it becomes, so a job submitted alone and the same job in a batch are the same job."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final

import msgspec

from events.domain.job_commands import SubmitJob
from events.store.ids import new_job_id
from service.api.auth import Caller
from service.api.errors import invalid
from service.api.schemas import JobSubmission
from service.api.validation import payload_problems

IDEMPOTENCY_KEY: Final = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"
MAX_IDEMPOTENCY_KEY: Final = 255


def fingerprint(data: JobSubmission) -> str:
    """SHA-256 of the canonical body (sorted keys, defaults filled in)."""
    body = msgspec.json.encode(msgspec.to_builtins(data), order="sorted")
    return hashlib.sha256(body).hexdigest()


def check_payload(data: JobSubmission) -> None:
    """400 naming every problem of the payload for its kind."""
    problems = payload_problems(data.kind, data.fireworks_payload)
    if problems:
        raise invalid(f"fireworks_payload is not a valid {data.kind} job", problems)


def submit_command(
    data: JobSubmission, caller: Caller, at: datetime, idempotency_key: str | None
) -> SubmitJob:
    """The command recording `data` as a new job of `caller`'s."""
    return SubmitJob(
        at=at,
        job_id=new_job_id(),
        user_id=caller.user_id,
        user_email=caller.email,
        kind=data.kind,
        display_name=data.display_name,
        gpu_count=data.gpu_count,
        fireworks_payload=data.fireworks_payload,
        idempotency_key=idempotency_key,
        request_fingerprint=None if idempotency_key is None else fingerprint(data),
        max_runtime_minutes=data.max_runtime_minutes,
    )
