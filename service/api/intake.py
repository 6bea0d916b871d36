"""What POST /jobs and POST /jobs/batch share: the checks of one submission and the command
it becomes, so a job submitted alone and the same job in a batch are the same job."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import msgspec

from events.domain.job_commands import SubmitJob
from events.domain.scheduling import DEFAULT_GPU_TYPE, DEFAULT_PRIORITY
from events.store.ids import new_job_id
from service.api.auth import Caller
from service.api.errors import ApiError, invalid
from service.api.runtime import Runtime
from service.api.schemas import JobSubmission
from service.api.validation import payload_problems
from service.sql import QUERIES

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


async def check_priorities(
    runtime: Runtime, caller: Caller, items: Sequence[JobSubmission]
) -> None:
    """403 FORBIDDEN when a member asks for a priority above their maximum (the default,
    50, unless an admin raised it with `ftq users max-priority`); admins may ask any. Read
    from the database only when some item asks above the default."""
    asked = max((i.priority for i in items if i.priority is not None), default=None)
    if asked is None or asked <= DEFAULT_PRIORITY or caller.is_admin:
        return
    async with runtime.pool.acquire() as conn:
        top = await conn.fetchval(QUERIES["user_max_priority"], caller.user_id)
    top = DEFAULT_PRIORITY if top is None else int(top)
    if asked > top:
        raise ApiError(
            403,
            "FORBIDDEN",
            f"priority {asked} is above your maximum of {top}; ask an admin to raise it "
            "(ftq users max-priority)",
            [{"field": "priority", "problem": f"at most {top} for you"}],
        )


def submit_command(
    data: JobSubmission,
    caller: Caller,
    at: datetime,
    idempotency_key: str | None,
    default_gpu_type: str = DEFAULT_GPU_TYPE,
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
        gpu_type=data.gpu_type or default_gpu_type,
        priority=DEFAULT_PRIORITY if data.priority is None else data.priority,
    )
