"""Benchmark: event-store appends/s against a plain INSERT, and the design alternatives.

Every writer has its own connection. Each append goes to a fresh stream (expected_version
0), so there are no conflicts, with an id made as the service makes job ids
(``events.store.ids.new_job_id``). One connection LISTENs on the channel throughout, as the
service's tailers do, and every variant that wakes tailers is checked afterwards: each
stream appended to must have been notified (``missing wake-ups`` must be 0).

Measured in the same run and database, each for a fixed duration after a short warm-up,
all variants interleaved and repeated (7 rounds by default); rates are medians over rounds,
ratios the median of the ratios within each round (``ratio_range``: the lowest and the
highest of those):

- ``plain``: a single-row autocommit ``INSERT`` of the same stream id and event JSON into a
  table with nothing else but a bigserial primary key (``bench_plain``), the baseline; 1 and 8
  writers.
- ``store``: what the service does: ``events.store.log.append`` (one autocommitted statement),
  then ``Waker.wake`` (the process's coalesced NOTIFY, sent in the background); 1 and 8
  writers. Target: at 8 writers at least 80 % of ``plain``.
- ``store_tx``: the same inside BEGIN/COMMIT (the shape the service uses when it also
  writes projection rows).
- ``notify_each``: ``append``, then a NOTIFY statement of its own after every append.
- ``notify_in_tx``: the NOTIFY inside the appending transaction.
- ``advisory_lock``: appends serialised by ``pg_advisory_xact_lock(<const>)`` before the
  insert (the simple gap-free alternative to the ``transaction_id`` read order).

Run: ``python -m bench.event_store [seconds]`` (DATABASE_URL, or an embedded server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Final

import asyncpg

from bench.databases import fresh_database
from events.domain.codec import encode, event_type, schema_version
from events.domain.job_events import JobSubmitted
from events.store.ids import new_job_id
from events.store.log import (
    CHANNEL,
    NewEvent,
    append,
    notify_appended,
    woken_streams,
)
from events.store.waker import Waker
from service.database import create_pool, resolve_database_url

TARGET_RATIO: Final = 0.80
WRITERS: Final = (1, 8)
ADVISORY_KEY: Final = 0x6674715F6170  # "ftq_ap": one lock for every append
META: Final = {"actor": "bench"}
PLAIN_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS bench_plain (id bigserial PRIMARY KEY, stream_id text, data jsonb)"
)
PLAIN_INSERT: Final = "INSERT INTO bench_plain (stream_id, data) VALUES ($1, $2::jsonb)"

# One append: (connection, the process's waker, fresh stream id) -> None.
Op = Callable[[asyncpg.Connection, Waker, str], Awaitable[None]]


def _event() -> NewEvent:
    submitted = JobSubmitted(
        at=datetime.now(UTC),
        job_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
        user_email="bench@example.com",
        kind="SFT",
        display_name="bench",
        gpu_count=4,
        fireworks_payload={
            "baseModel": "accounts/fireworks/models/qwen3-14b",
            "dataset": "accounts/bench/datasets/d-1",
            "epochs": 1,
        },
    )
    type_ = event_type(submitted)
    return NewEvent(type=type_, data=encode(submitted), schema_version=schema_version(type_))


EVENT: Final = _event()
EVENT_JSON: Final = EVENT.data.decode()


async def _plain(conn: asyncpg.Connection, _: Waker, stream_id: str) -> None:
    await conn.execute(PLAIN_INSERT, stream_id, EVENT_JSON)


async def _store(conn: asyncpg.Connection, waker: Waker, stream_id: str) -> None:
    await append(conn, stream_id, 0, [EVENT], META)
    waker.wake([stream_id])


async def _store_tx(conn: asyncpg.Connection, waker: Waker, stream_id: str) -> None:
    async with conn.transaction():
        await append(conn, stream_id, 0, [EVENT], META)
    waker.wake([stream_id])


async def _notify_each(conn: asyncpg.Connection, _: Waker, stream_id: str) -> None:
    await append(conn, stream_id, 0, [EVENT], META)  # committed on its own
    await notify_appended(conn, [stream_id])


async def _notify_in_tx(conn: asyncpg.Connection, _: Waker, stream_id: str) -> None:
    async with conn.transaction():
        await append(conn, stream_id, 0, [EVENT], META)
        await notify_appended(conn, [stream_id])


async def _advisory_lock(conn: asyncpg.Connection, waker: Waker, stream_id: str) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", ADVISORY_KEY)
        await append(conn, stream_id, 0, [EVENT], META)
    waker.wake([stream_id])


VARIANTS: Final[dict[str, Op]] = {
    "plain": _plain,
    "store": _store,
    "store_tx": _store_tx,
    "notify_each": _notify_each,
    "notify_in_tx": _notify_in_tx,
    "advisory_lock": _advisory_lock,
}


class Listener:
    """The tailers' side: which streams were notified, to check no wake-up went missing."""

    def __init__(self) -> None:
        self.notified: set[str] = set()
        self.arrived = asyncio.Event()

    def on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self.notified.update(woken_streams(str(payload)))
        self.arrived.set()

    async def missing(self, stream_ids: list[str], within_s: float = 2.0) -> int:
        """How many of ``stream_ids`` were not notified within ``within_s``."""
        wanted = set(stream_ids)
        deadline = time.perf_counter() + within_s
        while (left := wanted - self.notified) and (wait_s := deadline - time.perf_counter()) > 0:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), wait_s)
        return len(left)


class Measurement:
    def __init__(self, rate: float, stream_ids: list[str], notifies: int) -> None:
        self.rate = rate
        self.stream_ids = stream_ids
        self.notifies = notifies  # NOTIFY statements the waker sent


async def _measure(
    database_url: str, op: Op, writers: int, seconds: float, warmup: float
) -> Measurement:
    """Operations/s of ``op`` from ``writers`` connections over ``seconds`` after ``warmup``."""
    conns = [await asyncpg.connect(database_url) for _ in range(writers)]
    waker_pool = await create_pool(database_url, min_size=1, max_size=1)
    waker = Waker(waker_pool)
    stream_ids: list[str] = []
    try:
        start = time.perf_counter() + 0.05
        measure_from = start + warmup
        until = measure_from + seconds
        counts = [0] * writers

        async def writer(i: int) -> None:
            conn = conns[i]
            await asyncio.sleep(max(0.0, start - time.perf_counter()))
            while (now := time.perf_counter()) < until:
                stream_id = new_job_id()
                await op(conn, waker, stream_id)
                stream_ids.append(stream_id)
                if now >= measure_from and time.perf_counter() <= until:
                    counts[i] += 1

        await asyncio.gather(*(writer(i) for i in range(writers)))
        await waker.flush()
        return Measurement(sum(counts) / seconds, stream_ids, waker.sent)
    finally:
        await waker.close()
        await waker_pool.close()
        for conn in conns:
            await conn.close()


async def plain_insert_baseline(database_url: str, writers: int, seconds: float) -> float:
    """Rows/s of a bare single-row ``INSERT`` of an event's JSON into ``bench_plain`` (created
    when missing) from ``writers`` connections; the baseline ``bench.http_api`` also uses."""
    await _create_plain_table(database_url)
    measured = await _measure(database_url, _plain, writers, seconds, warmup=min(0.5, seconds / 4))
    return measured.rate


async def _create_plain_table(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(PLAIN_TABLE)
    finally:
        await conn.close()


def _row(
    name: str, value: float, target: str = "", ratio: float | None = None, ok: bool | None = None
) -> dict[str, object]:
    row: dict[str, object] = {"name": name, "value": round(value, 1), "unit": "appends/s"}
    if target:
        row["target"] = target
    if ratio is not None:
        row["ratio"] = round(ratio, 3)
    if ok is not None:
        row["ok"] = ok
    return row


async def _measure_fresh(
    server_url: str, op: Op, writers: int, seconds: float, warmup: float, notifies: bool
) -> tuple[Measurement, int]:
    """One measurement on a new, migrated database (so every variant starts from an empty
    log and an empty baseline table); also the streams whose wake-up never arrived."""
    async with fresh_database(server_url) as db_url:
        await _create_plain_table(db_url)
        conn = await asyncpg.connect(db_url)
        try:
            listener = Listener()
            await conn.add_listener(CHANNEL, listener.on_notify)
            measured = await _measure(db_url, op, writers, seconds, warmup)
            lost = await listener.missing(measured.stream_ids) if notifies else 0
        finally:
            await conn.close()
    return measured, lost


async def measure(
    server_url: str, seconds: float = 2.0, warmup: float = 0.5, rounds: int = 7
) -> list[dict[str, object]]:
    """Every variant at 1 and 8 writers, interleaved, ``rounds`` times; medians and ratios.

    Interleaving the variants within each round and taking the median over rounds keeps a
    noisy machine (another process taking a CPU for a few seconds) from deciding a ratio.
    Each measurement has a fresh database: otherwise variants measured later in a round
    would append to a log that earlier ones had grown, and the baseline would not."""
    samples: dict[tuple[str, int], list[float]] = {}
    missing: dict[str, int] = {}
    per_append: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for writers in WRITERS:
            for variant, op in VARIANTS.items():
                notifies = variant != "plain"
                measured, lost = await _measure_fresh(
                    server_url, op, writers, seconds, warmup, notifies
                )
                samples.setdefault((variant, writers), []).append(measured.rate)
                if measured.notifies:
                    share = measured.notifies / len(measured.stream_ids)
                    per_append.setdefault((variant, writers), []).append(share)
                if notifies:
                    missing[variant] = missing.get(variant, 0) + lost
    rates = {key: statistics.median(values) for key, values in samples.items()}

    def per_round(variant: str, base: str, writers: int) -> list[float]:
        """The ratio within each round."""
        pairs = zip(samples[variant, writers], samples[base, writers], strict=True)
        return [v / b if b else 0.0 for v, b in pairs]

    def paired(variant: str, base: str, writers: int) -> float:
        """Median over rounds of the ratio within each round (robust to a slow round)."""
        return statistics.median(per_round(variant, base, writers))

    labels = {
        "plain": "plain INSERT (baseline)",
        "store": "store append + coalesced wake-up",
        "store_tx": "store append in BEGIN/COMMIT + wake-up",
        "notify_each": "append + own NOTIFY after commit",
        "notify_in_tx": "append + NOTIFY inside BEGIN/COMMIT",
        "advisory_lock": "append, advisory-lock serialised",
    }
    rows: list[dict[str, object]] = []
    for writers in WRITERS:
        for variant in VARIANTS:
            rate = rates[variant, writers]
            ratio = paired(variant, "plain", writers)
            gated = variant == "store" and writers == WRITERS[-1]
            row = _row(
                f"{labels[variant]}, {writers}w",
                rate,
                target=f">= {TARGET_RATIO:.2f} x plain" if gated else "",
                ratio=ratio,
                ok=ratio >= TARGET_RATIO if gated else None,
            )
            row["samples"] = "/".join(str(round(v)) for v in samples[variant, writers])
            if variant != "plain":
                ratios = per_round(variant, "plain", writers)
                row["ratio_range"] = f"{min(ratios):.2f}-{max(ratios):.2f}"
            rows.append(row)
    for writers in WRITERS:
        if ("notify_in_tx", writers) not in samples or ("store_tx", writers) not in samples:
            continue
        rows.append(
            {
                "name": f"NOTIFY inside tx / coalesced wake-up, {writers}w",
                "value": round(paired("notify_in_tx", "store_tx", writers), 3),
                "unit": "x",
            }
        )
    for (variant, writers), shares in per_append.items():
        rows.append(
            {
                "name": f"waker NOTIFYs per append, {labels[variant]}, {writers}w",
                "value": round(statistics.median(shares), 3),
                "unit": "x",
            }
        )
    for variant, lost in missing.items():
        rows.append(
            {
                "name": f"missing wake-ups, {labels[variant]}",
                "value": lost,
                "unit": "streams",
                "target": "0",
                "ok": lost == 0,
            }
        )
    return rows


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py`; `ctx.database_url` (a server to create fresh
    databases on, one per measurement), `ctx.event_store_seconds` (per measurement, default 2),
    `ctx.event_store_warmup` and `ctx.event_store_rounds` (default 7; medians reported)."""
    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = await asyncio.to_thread(resolve_database_url, None)
    seconds = float(getattr(ctx, "event_store_seconds", 2.0))
    warmup = float(getattr(ctx, "event_store_warmup", 0.5))
    rounds = int(getattr(ctx, "event_store_rounds", 7))
    return await measure(server_url, seconds, warmup, rounds)


if __name__ == "__main__":
    args = sys.argv[1:]
    context = SimpleNamespace(event_store_seconds=float(args[0]) if args else 2.0)
    for result in asyncio.run(run(context)):
        print(result)
