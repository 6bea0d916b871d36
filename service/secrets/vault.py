"""The job data keys (table `job_data_keys`, outside the log) and what uses them: seal a
payload at submit, open it at admission, and say which jobs cannot be opened."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import asyncpg
import structlog

from events.store.log import Connection
from events.store.sql import load_queries
from service.secrets import envelope
from service.secrets.envelope import SecretsUnreadable
from service.secrets.keys import ENV, Keyring

log = structlog.get_logger(__name__)

QUERIES: Final = load_queries(Path(__file__).parent / "queries.sql")
Db = asyncpg.Pool | Connection
KeyRow = tuple[str, str, bytes]  # job id, master key id, wrapped data key


class Vault:
    """Seals and opens payload secrets with per-job data keys wrapped by the keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def prepare(self, job_id: str, payload: dict[str, Any]) -> tuple[dict[str, Any], KeyRow | None]:
        """`payload` with its secret values sealed under a new data key for `job_id`, and the
        key's row (wrapped by the current master key), stored with the job's event (the
        new-jobs statement of `projections.recorder.record_new_jobs`) or by `store` before
        it. A payload with no secret comes back as it is, with no row. ValueError: a secret
        field's value poses as a sealed value."""
        found = envelope.seal_under_new_key(payload, job_id)
        if found is None:
            return payload, None
        sealed, data_key = found
        current = self.keyring.current
        return sealed, (job_id, current.kid, envelope.wrap(current.key, job_id, data_key))

    async def store(self, db: Db, rows: Sequence[KeyRow | None]) -> None:
        """Store the wrapped data keys `prepare` made (one statement for a group: with
        `executemany`, PostgreSQL ran one INSERT per key)."""
        kept = [row for row in rows if row is not None]
        if kept:
            await db.execute(QUERIES["insert_keys"], *map(list, zip(*kept, strict=True)))

    async def seal(self, db: Db, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """`prepare` and `store` in one: the payload as the log will hold it."""
        sealed, row = self.prepare(job_id, payload)
        await self.store(db, [row])
        return sealed

    async def data_key(self, db: Db, job_id: str) -> bytes:
        """The job's data key, unwrapped. SecretsUnreadable: none (shredded), or wrapped by
        a master key this process does not have."""
        row = await db.fetchrow(QUERIES["key_of"], job_id)
        if row is None:
            raise SecretsUnreadable("the job's data key is gone (its secrets were shredded)")
        master = self.keyring.find(row[0])
        if master is None:
            raise SecretsUnreadable(
                f"the job's data key is wrapped by master key {row[0]}, not by {ENV} "
                f"({self.keyring.current.kid})"
            )
        return envelope.unwrap(master.key, job_id, bytes(row[1]))

    async def open(self, db: Db, job_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The payload exactly as submitted (in memory only: admission's create)."""
        if not envelope.sealed_fields(payload):
            return dict(payload)
        return envelope.unseal(payload, job_id, await self.data_key(db, job_id))

    async def check(self, db: Db, job_id: str, payload: Mapping[str, Any]) -> str | None:
        """Why the payload's secrets cannot be opened (None: they can, or there are none)."""
        try:
            await self.open(db, job_id, payload)
        except SecretsUnreadable as exc:
            return str(exc)
        return None

    async def check_at_start(self, pool: asyncpg.Pool) -> int:
        """One clear error when data keys are wrapped by a master key this process does not
        have; returns how many there are (their jobs are not admitted; others are)."""
        rows = await pool.fetch(QUERIES["keys_by_kid"])
        foreign = {r[0]: int(r[1]) for r in rows if self.keyring.find(r[0]) is None}
        if foreign:
            log.error(
                "secrets.master_key_mismatch",
                data_keys=sum(foreign.values()),
                wrapped_by=sorted(foreign),
                current=self.keyring.current.kid,
                hint=f"{ENV} is not the master key these jobs' secrets were wrapped with (or "
                "the key file changed): those jobs are not admitted until ftq runs with that "
                "key (or rotation is finished); all other jobs are admitted as usual",
            )
        return sum(foreign.values())
