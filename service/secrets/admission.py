"""The admission's side of the payload secrets: the only place a payload is opened, in
memory, just before the Fireworks create; and the check that keeps a job whose secrets
cannot be opened out of the plan (other jobs keep flowing)."""

from __future__ import annotations

from typing import Any

from events.domain.job import JobState
from service.secrets import envelope
from service.secrets.envelope import SecretsUnreadable
from service.secrets.vault import Db, Vault


class SecretsBlocked(Exception):
    """A planned job's secrets cannot be opened: it is left QUEUED and out of the plans."""

    def __init__(self, job_id: str, why: str) -> None:
        super().__init__(why)
        self.job_id = job_id
        self.why = why


async def fireworks_payload(vault: Vault | None, db: Db, state: JobState) -> dict[str, Any]:
    """The payload exactly as submitted, for the Fireworks create (never stored, never
    logged). Raises SecretsUnreadable."""
    if vault is None:
        if envelope.sealed_fields(state.fireworks_payload):
            raise SecretsUnreadable("no master key in this process")
        return dict(state.fireworks_payload)
    return await vault.open(db, state.job_id, state.fireworks_payload)


async def check_openable(vault: Vault | None, db: Db, state: JobState) -> None:
    """Raises SecretsBlocked when `state`'s secrets cannot be opened now."""
    try:
        await fireworks_payload(vault, db, state)
    except SecretsUnreadable as exc:
        raise SecretsBlocked(state.job_id, str(exc)) from None
