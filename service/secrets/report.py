"""`ftq secrets report`: which events of the log hold payload secrets in plain text (written
before sealing existed, or by an older ftq), which jobs hold sealed ones and whether their
data key is still there. Reads the raw log (every `job.submitted`), needs no key."""

from __future__ import annotations

from typing import Any, Final

import asyncpg
import msgspec

from events.domain import codec
from events.domain.job_events import JobSubmitted
from service.secrets import envelope
from service.secrets.vault import QUERIES

BATCH: Final = 2000


class PlainSecret(msgspec.Struct, frozen=True):
    position: int
    job_id: str
    state: str | None
    fields: list[str]


class Report(msgspec.Struct, kw_only=True):
    submitted: int = 0
    plain: list[PlainSecret] = msgspec.field(default_factory=list)
    sealed: int = 0  # jobs with sealed secrets
    sealed_without_key: int = 0  # of which shredded (or imported without their key)
    keys_by_master: dict[str, int] = msgspec.field(default_factory=dict)


def _payload(type_: str, version: int, data: str) -> dict[str, Any]:
    event = codec.decode(type_, version, data)
    assert isinstance(event, JobSubmitted)
    return event.fireworks_payload


async def report(pool: asyncpg.Pool) -> Report:
    out = Report()
    async with pool.acquire() as conn:
        keys = {r[0]: int(r[1]) for r in await conn.fetch(QUERIES["keys_by_kid"])}
        with_key = {str(r[0]) for r in await conn.fetch(QUERIES["jobs_with_a_key"])}
        states = {r[0]: r[1] for r in await conn.fetch(QUERIES["job_states"])}
        after = 0
        while True:
            rows = await conn.fetch(QUERIES["submitted_events"], after, BATCH)
            for position, stream_id, version, data in rows:
                out.submitted += 1
                payload = _payload("job.submitted", version, data)
                plain = envelope.plain_fields(payload)
                if plain:
                    out.plain.append(PlainSecret(position, stream_id, states.get(stream_id), plain))
                if envelope.sealed_fields(payload):
                    out.sealed += 1
                    out.sealed_without_key += stream_id not in with_key
            if len(rows) < BATCH:
                break
            after = rows[-1][0]
    out.keys_by_master = keys
    return out
