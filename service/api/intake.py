"""What POST /jobs and POST /jobs/batch share: the checks of one submission and the command
it becomes, so a job submitted alone and the same job in a batch are the same job.

`after` (pipelines) names jobs that exist already, so it can never close a cycle: a job's
id is made at its submit, after the jobs it names, and a job naming itself is refused by
the domain too."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final

import msgspec

from events.domain.job_commands import SubmitJob
from events.domain.scheduling import DEFAULT_GPU_TYPE, DEFAULT_PRIORITY
from events.domain.scheduling.dependencies import BROKEN, unmet, waiting_reason
from events.store.ids import new_job_id
from service.api.auth import Caller
from service.api.errors import ApiError, invalid
from service.api.runtime import Runtime
from service.api.schemas import JobSubmission
from service.api.validation import payload_problems
from service.redaction import redact
from service.secrets.envelope import posing_as_sealed
from service.sql import INTAKE, QUERIES

IDEMPOTENCY_KEY: Final = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"
MAX_IDEMPOTENCY_KEY: Final = 255


# Fields added to the body after Idempotency-Keys were in use: left out of the fingerprint
# while unset, so a retry of a body sent before they existed still matches.
_LATER_FIELDS: Final = ("after", "priority", "max_runtime_minutes")


def fingerprint(data: JobSubmission) -> str:
    """SHA-256 of the canonical body (sorted keys, defaults filled in) with its payload
    secrets masked: the fingerprint is recorded in the log, and a hash of a short secret
    could be guessed offline. So a retry that differs only in a secret's value counts as the
    same request (it gets the job made first)."""
    fields = msgspec.to_builtins(data)
    fields["fireworks_payload"] = redact(fields["fireworks_payload"])
    for name in _LATER_FIELDS:
        if fields.get(name) is None:
            fields.pop(name, None)
    body = msgspec.json.encode(fields, order="sorted")
    return hashlib.sha256(body).hexdigest()


def check_payload(data: JobSubmission) -> JobSubmission:
    """`data` with `after` in canonical form; 400 naming every problem of the payload for its
    kind, or an `after` entry that is not a job id."""
    problems = payload_problems(data.kind, data.fireworks_payload)
    problems += posing_as_sealed(data.fireworks_payload)  # service.secrets seals the secrets
    if problems:
        raise invalid(f"fireworks_payload is not a valid {data.kind} job", problems)
    if not data.after:
        return data
    after: list[str] = []
    for n, value in enumerate(data.after):
        try:
            after.append(str(uuid.UUID(value)))
        except ValueError:
            detail = {"field": f"after.{n}", "problem": "not a job id"}
            raise invalid(f"after.{n} is not a job id", [detail]) from None
    return msgspec.structs.replace(data, after=list(dict.fromkeys(after)))


Known = Mapping[str, tuple[str, str]]  # job id -> (owner's user id, state)


async def known_jobs(runtime: Runtime, submissions: Iterable[JobSubmission]) -> Known:
    """Owner and state of every job the submissions name in `after` (one read)."""
    ids = sorted({job for data in submissions for job in data.after or ()})
    if not ids:
        return {}
    rows = await runtime.pool.fetch(INTAKE["owners_and_states"], ids)
    return {r[0]: (r[1], r[2]) for r in rows}


def check_after(data: JobSubmission, caller: Caller, known: Known) -> str | None:
    """400 unless every job of `after` is one of the caller's that may still succeed; the
    reason the new job will wait, if it will (None: it need not wait)."""
    statuses: dict[str, str | None] = {}
    for n, job in enumerate(data.after or ()):
        owner, state = known.get(job, (None, None))
        if owner != caller.user_id:  # unknown and another user's alike: existence not leaked
            detail = {"field": f"after.{n}", "problem": f"no job {job} of yours"}
            raise invalid(f"after names job {job}, which is not one of your jobs", [detail])
        if state in BROKEN:
            detail = {"field": f"after.{n}", "problem": f"job {job} ended {state}"}
            raise invalid(
                f"after names job {job}, which ended {state}: this job could never run", [detail]
            )
        statuses[job] = state
    missing = unmet(data.after or (), statuses)
    return None if missing is None else waiting_reason(missing)


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
        after=tuple(data.after or ()),
    )
