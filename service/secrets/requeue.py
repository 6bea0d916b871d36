"""What a requeue (a new job from an ended one) needs of the payload secrets.

The old job's sealed values are bound to the old job's id and data key: the new job must
get the payload in plain text, to be sealed again under its own key by the Submitter. Once
the old job's secrets are shredded, they are gone: the requeue must bring them again, or it
is refused (400 naming the fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events.domain.job import JobState
from service.secrets import envelope
from service.secrets.envelope import SecretsUnreadable
from service.secrets.vault import Db, Vault


class SecretsNeeded(Exception):
    """The old job's secrets are shredded (or cannot be opened): give them again."""

    def __init__(self, fields: list[str], why: str) -> None:
        super().__init__(f"the secrets of {', '.join(fields)} are gone ({why}): give them again")
        self.fields = fields
        self.why = why

    def details(self) -> list[dict[str, str]]:
        """The `details` of the 400: one entry per field to give again."""
        return [
            {"field": f"fireworks_payload.{f}", "problem": f"required again: {self.why}"}
            for f in self.fields
        ]


async def requeue_payload(
    vault: Vault | None,
    db: Db,
    old: JobState,
    given: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The plain payload of the job requeued from `old`: `given` (a whole new payload) when
    the caller sent one, else the old one opened. Raises SecretsNeeded when the old job's
    sealed secrets cannot be had (shredded, or a master key this ftq does not have)."""
    if given is not None:
        return dict(given)
    sealed = envelope.sealed_fields(old.fireworks_payload)
    if not sealed:
        return dict(old.fireworks_payload)
    if old.secrets_shredded_at is not None:
        raise SecretsNeeded(sealed, "shredded")
    if vault is None:
        raise SecretsNeeded(sealed, "no master key")
    try:
        return await vault.open(db, old.job_id, old.fireworks_payload)
    except SecretsUnreadable as exc:
        raise SecretsNeeded(sealed, str(exc)) from None
