"""Benchmark: what each part of an append costs, against the plain INSERT of bench.event_store.

Each variant is the store's append (``events.store.log.append`` + the coalesced wake-up, 8
writers, as in ``bench.event_store``) on a fresh, migrated database with one thing taken away
or put back; all variants and the plain INSERT are interleaved and repeated, and each is
reported as appends/s, the median of its per-round ratio to the plain INSERT (and their
range; in the second table, to the version 7 ids), and the WAL it wrote per append
(``pg_current_wal_lsn()`` before and after, warm-up included):

- ``store``: the log as migrated, for reference;
- without the position index, the read-order index or the unique (stream, version) index;
- without ``RETURNING`` (the same INSERT, sent with ``execute``);
- with the table ``CHECK (stream_version > 0)`` that migration 0003 replaced by a domain.

These are what an append pays for: none of the removals is an option for the service (the
bench/README.md, "Measured", says why). A second table compares job ids of version 4
(random) with the service's version 7 (time-ordered) on a log that already holds
``prefill`` events, right after a CHECKPOINT, where random index leaves cost full-page
images in the WAL.

Run: ``python -m bench append_costs`` (DATABASE_URL, or an embedded server).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import asyncpg

from bench.databases import fresh_database
from bench.event_store import EVENT, META, Op, _create_plain_table, _measure, _plain, _store
from events.store.ids import new_job_id
from events.store.log import prepare
from events.store.sql import QUERIES
from events.store.waker import Waker
from service.database import resolve_database_url

WRITERS: Final = 8
NO_RETURNING: Final = QUERIES["append_new_stream"].rsplit("RETURNING", 1)[0]
TABLE_CHECK: Final = (
    "ALTER TABLE events ALTER COLUMN stream_version TYPE int;"
    " ALTER TABLE events ADD CONSTRAINT events_stream_version_check CHECK (stream_version > 0)"
)


async def _no_returning(conn: asyncpg.Connection, waker: Waker, stream_id: str) -> None:
    prepared = prepare([EVENT], META)
    await conn.execute(
        NO_RETURNING, stream_id, EVENT.type, EVENT.schema_version, prepared.datas[0],
        prepared.metadata_json,
    )  # fmt: skip
    waker.wake([stream_id])


async def _random_id(conn: asyncpg.Connection, waker: Waker, _: str) -> None:
    """The store's append under a version 4 id (the loop's own id, made anyway, is unused:
    about 3 µs of client CPU an append that the version 7 side does not pay twice)."""
    await _store(conn, waker, str(uuid.uuid4()))


@dataclass(frozen=True)
class Variant:
    label: str
    op: Op
    setup: str = ""  # SQL run on the fresh database first


VARIANTS: Final = (
    Variant("plain INSERT (baseline)", _plain),
    Variant("store append, as migrated", _store),
    Variant("without the position index", _store, "ALTER TABLE events DROP CONSTRAINT events_pkey"),
    Variant(
        "without the read-order index", _store, "DROP INDEX events_transaction_id_position_idx"
    ),
    Variant(
        "without the unique (stream, version) index",
        _store,
        "ALTER TABLE events DROP CONSTRAINT events_stream_id_stream_version_key",
    ),
    Variant("without RETURNING", _no_returning),
    Variant("with the table CHECK of before 0003", _store, TABLE_CHECK),
)


@dataclass(frozen=True)
class Sample:
    rate: float
    wal_per_append: float


async def _wal_lsn(db_url: str) -> str:
    conn = await asyncpg.connect(db_url)
    try:
        return str(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
    finally:
        await conn.close()


async def _wal_since(db_url: str, lsn: str) -> float:
    conn = await asyncpg.connect(db_url)
    try:
        return float(await conn.fetchval("SELECT pg_current_wal_lsn() - $1::text::pg_lsn", lsn))
    finally:
        await conn.close()


async def _sample(
    server_url: str,
    variant: Variant,
    seconds: float,
    warmup: float,
    prepare_db: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> Sample:
    async with fresh_database(server_url) as db_url:
        await _create_plain_table(db_url)
        conn = await asyncpg.connect(db_url)
        try:
            if variant.setup:
                await conn.execute(variant.setup)
            if prepare_db is not None:
                await prepare_db(conn)
        finally:
            await conn.close()
        lsn = await _wal_lsn(db_url)
        measured = await _measure(db_url, variant.op, WRITERS, seconds, warmup)
        wal = await _wal_since(db_url, lsn)
    return Sample(measured.rate, wal / max(1, len(measured.stream_ids)))


def _rows(samples: dict[str, list[Sample]], base: str, note: str = "") -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for label, values in samples.items():
        ratios = [v.rate / b.rate for v, b in zip(values, samples[base], strict=True) if b.rate]
        row: dict[str, object] = {
            "name": f"{label}{note}",
            "value": round(statistics.median(v.rate for v in values)),
            "unit": "appends/s",
            "ratio": round(statistics.median(ratios), 3),
            "ratio_range": f"{min(ratios):.2f}-{max(ratios):.2f}",
            "wal_bytes_per_append": round(statistics.median(v.wal_per_append for v in values)),
        }
        rows.append(row)
    return rows


async def measure(
    server_url: str,
    seconds: float = 2.0,
    warmup: float = 0.5,
    rounds: int = 5,
    prefill: int = 300_000,
) -> list[dict[str, object]]:
    """The variants, interleaved, ``rounds`` times; then version 4 against version 7 ids on a
    log of ``prefill`` events (``rounds`` // 2 + 1 times, each pair on fresh databases)."""
    samples: dict[str, list[Sample]] = {v.label: [] for v in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            samples[variant.label].append(await _sample(server_url, variant, seconds, warmup))
    rows = _rows(samples, VARIANTS[0].label)

    async def filled(conn: asyncpg.Connection, make_id: Callable[[], str]) -> None:
        data = prepare([EVENT], META)
        records = [
            (make_id(), 1, EVENT.type, EVENT.schema_version, data.datas[0], data.metadata_json)
            for _ in range(prefill)
        ]
        columns = ("stream_id", "stream_version", "type", "schema_version", "data", "metadata")
        await conn.copy_records_to_table("events", records=records, columns=columns)
        await conn.execute("CHECKPOINT")

    ids: dict[str, list[Sample]] = {
        "version 7 job ids (the service's)": [],
        "version 4 job ids": [],
    }
    for _ in range(rounds // 2 + 1):
        ids["version 7 job ids (the service's)"].append(
            await _sample(
                server_url, Variant("", _store), seconds, warmup, lambda c: filled(c, new_job_id)
            )
        )
        ids["version 4 job ids"].append(
            await _sample(
                server_url,
                Variant("", _random_id),
                seconds,
                warmup,
                lambda c: filled(c, lambda: str(uuid.uuid4())),
            )
        )
    rows += _rows(ids, "version 7 job ids (the service's)", f", {prefill:,} events in the log")
    return rows


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py`; `ctx.database_url`, `ctx.append_costs_rounds`
    (default 5) and `ctx.append_costs_prefill` (default 300k)."""
    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = await asyncio.to_thread(resolve_database_url, None)
    rounds = int(getattr(ctx, "append_costs_rounds", 5))
    prefill = int(getattr(ctx, "append_costs_prefill", 300_000))
    return await measure(server_url, rounds=rounds, prefill=prefill)
