"""DELETE /jobs/{id}/secrets: shred an ended job's payload secrets (owner or admin). The
secrets are sealed at submit by the Submitter (service.submissions, service.secrets)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec
from litestar import delete
from litestar.params import FromPath

from events.domain.job import JobState
from events.domain.job_commands import SubmitJob
from service.api.auth import CallerDep
from service.api.common import RuntimeDep, checked_uuid, errors, metadata
from service.api.errors import invalid, not_found
from service.api.runtime import Runtime
from service.api.views import job_row
from service.secrets.requeue import SecretsNeeded, requeue_payload
from service.secrets.shred import shred
from service.sql import QUERIES


async def requeue_with_secrets(runtime: Runtime, old: JobState, command: SubmitJob) -> SubmitJob:
    """The requeue's submit with the old job's payload in plain text (its sealed values are
    bound to the old job; the Submitter seals them anew under the new job's key). 400 naming
    the fields when the old job's secrets are shredded."""
    try:
        payload = await requeue_payload(runtime.vault, runtime.pool, old)
    except SecretsNeeded as exc:
        raise invalid(
            f"{exc}; submit the job again with them (POST /jobs)", exc.details()
        ) from None
    return msgspec.structs.replace(command, fireworks_payload=payload)


class SecretsShredded(msgspec.Struct, frozen=True):
    id: str
    secrets_shredded_at: datetime
    by: str


@delete(
    "/jobs/{id:str}/secrets",
    status_code=200,
    summary="Shred a job's payload secrets",
    responses=errors(404, 409),
    description="Deletes the ended job's data key: the secrets sealed in its history can never "
    "be read again (the rest of the job and its history stay). The job's owner or an admin; "
    "409 while the job has not ended. Shredding twice is not an error.",
)
async def shred_secrets(
    id: FromPath[str], caller: CallerDep, runtime: RuntimeDep
) -> SecretsShredded:
    record = await runtime.pool.fetchrow(QUERIES["api_job_by_id"], checked_uuid(id))
    if record is None:
        raise not_found("no such job")
    row = job_row(record)
    if row.user_id != caller.user_id and not caller.is_admin:
        raise not_found("no such job")  # never 403: existence is not leaked
    state = await shred(runtime.pool, row.id, caller.email, metadata(caller))
    assert state.secrets_shredded_at is not None
    return SecretsShredded(
        id=row.id, secrets_shredded_at=state.secrets_shredded_at, by=caller.email
    )


SECRETS_ROUTES: Final = [shred_secrets]
