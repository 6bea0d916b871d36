"""Benchmark: append → SSE client latency through the real app (target p99 < 100 ms).

A real server (uvicorn, in-process, admission loop off) on a fresh database; N admin clients
follow `GET /events/stream` from the head with aiohttp; jobs are submitted through
`service.commands` at a steady rate (one `job.submitted` event each). Latency per event and
client = receipt time - the event's `recorded_at`. Every client must get every event once.
Run: `python -m bench.streams [events] [clients]` (DATABASE_URL, or an embedded server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import asyncpg
import uvicorn

from bench.databases import fresh_database
from events.domain.job import JOB
from events.domain.job_commands import SubmitJob
from events.store.ids import new_job_id
from service import directory
from service.app import create_app
from service.commands import run_command
from service.database import resolve_database_url
from service.settings import Settings

TARGET_P99_MS = 100.0
META = {"actor": "bench"}
PAYLOAD = {"baseModel": "accounts/fireworks/models/qwen3-14b", "dataset": "d-1"}


@contextlib.asynccontextmanager
async def _server(db_url: str) -> AsyncIterator[str]:
    settings = Settings(
        database_url=db_url,
        fireworks_base_url="simulator",
        fireworks_gpu_quota=8,
        data_dir=Path(tempfile.mkdtemp(prefix="ftq-bench-")),
        log_level="warning",
    )
    config = uvicorn.Config(
        create_app(settings, run_scheduler=False),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        ws="none",
    )
    config.timeout_graceful_shutdown = 2
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(60):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _client(
    session: aiohttp.ClientSession,
    after: int,
    expected: int,
    connected: asyncio.Event,
    latencies: list[float],
    positions: list[int],
) -> None:
    async with session.get(f"/events/stream?after={after}&type=job.submitted") as resp:
        resp.raise_for_status()
        connected.set()
        while len(positions) < expected:
            line = await resp.content.readline()
            if not line:
                raise AssertionError("stream ended early")
            if line.startswith(b"data: "):
                received = time.time()
                event = json.loads(line[6:])
                recorded = datetime.fromisoformat(event["recorded_at"]).timestamp()
                latencies.append((received - recorded) * 1000)
                positions.append(event["position"])


async def measure(
    db_url: str, events: int = 500, clients: int = 10, rate: float = 200.0
) -> dict[str, object]:
    async with (
        _server(db_url) as base_url,
        asyncpg.create_pool(db_url, min_size=1, max_size=4) as pool,
    ):
        await directory.add_user(pool, "bench@example.com", "admin", META)
        key = (await directory.issue_key(pool, "bench@example.com", None, META)).key
        user_id = await pool.fetchval(
            "SELECT id::text FROM users WHERE email = $1", "bench@example.com"
        )
        head = int(await pool.fetchval("SELECT coalesce(max(position), 0) FROM events"))
        headers = {"Authorization": f"Bearer {key}"}
        latencies: list[list[float]] = [[] for _ in range(clients)]
        positions: list[list[int]] = [[] for _ in range(clients)]
        timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
        async with aiohttp.ClientSession(base_url, headers=headers, timeout=timeout) as session:
            ready = [asyncio.Event() for _ in range(clients)]
            readers = [
                asyncio.create_task(
                    _client(session, head, events, ready[i], latencies[i], positions[i])
                )
                for i in range(clients)
            ]
            async with asyncio.timeout(30):
                await asyncio.gather(*(e.wait() for e in ready))
            start = time.perf_counter()
            for i in range(events):
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                job_id = new_job_id()
                command = SubmitJob(
                    at=datetime.now(UTC),
                    job_id=job_id,
                    user_id=user_id,
                    user_email="bench@example.com",
                    kind="SFT",
                    display_name=None,
                    gpu_count=1,
                    fireworks_payload=PAYLOAD,
                )
                await run_command(pool, JOB, job_id, command, META)
            async with asyncio.timeout(60):
                await asyncio.gather(*readers)
    for seen in positions:
        if len(seen) != events or len(set(seen)) != events:
            raise AssertionError("a client lost or repeated events")
    every = sorted(x for per_client in latencies for x in per_client)
    p99 = every[min(len(every) - 1, int(len(every) * 0.99))]
    return {
        "name": "append → SSE client latency",
        "events": events,
        "clients": clients,
        "rate_per_s": rate,
        "p50_ms": round(statistics.median(every), 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(every[-1], 2),
        "target_p99_ms": TARGET_P99_MS,
        "ok": p99 < TARGET_P99_MS,
    }


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py`; `ctx.database_url`, `ctx.stream_events` and
    `ctx.stream_clients` override the defaults."""
    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = await asyncio.to_thread(resolve_database_url, None)
    events = int(getattr(ctx, "stream_events", 500))
    clients = int(getattr(ctx, "stream_clients", 10))
    async with fresh_database(server_url) as db_url:
        return [await measure(db_url, events, clients)]


if __name__ == "__main__":
    args = sys.argv[1:]
    ctx = SimpleNamespace(
        stream_events=int(args[0]) if args else 500,
        stream_clients=int(args[1]) if len(args) > 1 else 10,
    )
    for row in asyncio.run(run(ctx)):
        print(row)
