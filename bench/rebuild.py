"""Benchmark: `ftq replay --verify` — rebuild the projections from a log of ~1M events into
tables (temp twins, bulk COPY), then compare them with the live ones.

The log is the synthetic, audit-clean history of `bench.replay`, copied into a fresh
database's `events` table. Run: `python -m bench rebuild`. Target: ≥ 50k events/s."""

from __future__ import annotations

import os
import time

import asyncpg

from bench.databases import fresh_database
from bench.replay import generate, rate_row
from projections.rebuild import rebuild, verify
from service.database import resolve_database_url

TARGET = 50_000
COLUMNS = ("stream_id", "stream_version", "type", "schema_version", "data", "metadata",
           "recorded_at")  # fmt: skip


async def measure(server_url: str, n_events: int) -> list[dict[str, object]]:
    rows = generate(n_events)
    records = [
        (r.stream_id, r.stream_version, r.type, r.schema_version, r.data.decode(), "{}",
         r.recorded_at)
        for r in rows
    ]  # fmt: skip
    async with fresh_database(server_url) as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.copy_records_to_table("events", records=records, columns=COLUMNS)
            start = time.perf_counter()
            folded = await rebuild(conn)
            rebuild_s = time.perf_counter() - start
            start = time.perf_counter()
            differences = await verify(conn)
            verify_s = time.perf_counter() - start
        finally:
            await conn.close()
    if folded != len(rows) or differences:
        raise AssertionError(f"rebuild folded {folded} of {len(rows)}; {differences[:3]}")
    return [
        rate_row("rebuild into live tables", folded, rebuild_s, TARGET),
        rate_row("replay --verify (rebuild + compare)", folded, verify_s, TARGET),
    ]


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py`; `ctx.database_url`, `ctx.replay_events`."""
    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = resolve_database_url(None)
    return await measure(server_url, int(getattr(ctx, "replay_events", 1_000_000)))
