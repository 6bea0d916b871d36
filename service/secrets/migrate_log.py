"""The way out for a log that holds plain secrets (events written before sealing): export it
with every plain secret replaced by a `redacted` marker (`ftq replay --export FILE --redact`),
import that into a fresh database (`ftq import FILE`), retire the old database.

The import appends the events in the file's order (the old read order) in one transaction,
so the new log reads in the same order (positions are renumbered from 1), keeps each event's
stream, version, type, schema version, data, metadata and recorded time, and rebuilds the
projections from it. `keys_from` copies the data keys of the imported jobs from the old
database, so sealed secrets of jobs not yet shredded stay usable."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
import msgspec

from projections.rebuild import rebuild
from service.secrets import envelope
from service.secrets.vault import QUERIES

BATCH: Final = 5000
_json = msgspec.json.Encoder()


class ImportRefused(Exception):
    """The file or the target database does not allow the import; the message says why."""


def redact_data(type_: str, data: bytes) -> bytes:
    """An event's data with plain payload secrets replaced by `redacted` markers (sealed
    values kept as they are); events without a payload come back unchanged."""
    if not type_.startswith("job."):
        return data
    raw: dict[str, Any] = msgspec.json.decode(data)
    changed = False
    for key in ("fireworks_payload", "payload"):  # `payload`: job.submitted v1
        value = raw.get(key)
        if isinstance(value, dict) and envelope.plain_fields(value):
            raw[key] = envelope.redact_plain(value)
            changed = True
    return _json.encode(raw) if changed else data


class _Line(msgspec.Struct):
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    recorded_at: datetime
    metadata: msgspec.Raw
    data: msgspec.Raw


class Imported(msgspec.Struct, kw_only=True):
    events: int
    keys: int


async def import_log(pool: asyncpg.Pool, path: Path, keys_from: str | None = None) -> Imported:
    decoder = msgspec.json.Decoder(_Line)
    count = 0
    jobs: set[str] = set()
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(QUERIES["log_is_empty"]):
            raise ImportRefused(
                "the target database's event log is not empty: import into a fresh one"
            )
        batch: list[tuple[Any, ...]] = []
        with path.open("rb") as file:
            for number, text in enumerate(file, 1):
                if not text.strip():
                    continue
                try:
                    line = decoder.decode(text)
                except msgspec.ValidationError as exc:
                    raise ImportRefused(f"{path}:{number}: not an export line: {exc}") from None
                batch.append(
                    (line.stream_id, line.stream_version, line.type, line.schema_version,
                     bytes(line.data).decode(), bytes(line.metadata).decode(), line.recorded_at)
                )  # fmt: skip
                if line.type.startswith("job."):
                    jobs.add(line.stream_id)
                if len(batch) >= BATCH:
                    await conn.executemany(QUERIES["import_event"], batch)
                    count += len(batch)
                    batch = []
        if batch:
            await conn.executemany(QUERIES["import_event"], batch)
            count += len(batch)
        await rebuild(conn)
        keys = await _copy_keys(conn, keys_from, jobs) if keys_from else 0
    return Imported(events=count, keys=keys)


async def _copy_keys(conn: Any, dsn: str, jobs: set[str]) -> int:
    old = await asyncpg.connect(dsn)
    try:
        rows = await old.fetch(QUERIES["all_keys"])
    finally:
        await old.close()
    keep = [tuple(r) for r in rows if r[0] in jobs]
    await conn.executemany(QUERIES["copy_key"], keep)
    return len(keep)
