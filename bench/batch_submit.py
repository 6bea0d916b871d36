"""Benchmark: 1,000 jobs in one `POST /jobs/batch` against 1,000 single `POST /jobs`, in the
same run, on the same kind of server (uvicorn, one worker, admission loop off, a fresh
database for each measurement).

The single POSTs are sent as a sweep script sends them: one after another on one keep-alive
connection, and also 32 at a time (the group-commit batcher then shares commits among them).
The batch is sent once, after one small warm-up batch. The ratio is single POSTs' wall time
over the batch's. Run: `python -m bench batch_submit` (DATABASE_URL, or an embedded server)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from types import SimpleNamespace
from typing import Any, Final

import aiohttp

from bench.databases import fresh_database
from bench.http_api import BODY, _key, _server
from service.database import resolve_database_url

JOBS: Final = 1000
CONCURRENT: Final = 32


async def _singles(base: str, key: str, jobs: int, connections: int) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        async with session.post(f"{base}/jobs", json=BODY) as resp:  # warm-up
            assert resp.status == 201, await resp.text()
        todo = iter(range(jobs))

        async def worker() -> None:
            for _ in todo:
                async with session.post(f"{base}/jobs", json=BODY) as resp:
                    assert resp.status == 201, await resp.text()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return time.perf_counter() - started


async def _batch(base: str, key: str, jobs: int) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{base}/jobs/batch", json=[BODY] * 10) as resp:  # warm-up
            assert resp.status == 200, await resp.text()
        started = time.perf_counter()
        async with session.post(f"{base}/jobs/batch", json=[BODY] * jobs) as resp:
            results: list[dict[str, Any]] = await resp.json()
        elapsed = time.perf_counter() - started
    assert resp.status == 200 and [r["status"] for r in results] == [201] * jobs
    return elapsed


async def _measure(server_url: str, what: str, jobs: int) -> float:
    async with fresh_database(server_url) as db_url, _server(db_url) as base:
        key = await _key(db_url)
        if what == "batch":
            return await _batch(base, key, jobs)
        return await _singles(base, key, jobs, 1 if what == "sequential" else CONCURRENT)


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py`; `ctx.database_url`, `ctx.batch_jobs`."""
    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = await asyncio.to_thread(resolve_database_url, None)
    jobs = int(getattr(ctx, "batch_jobs", JOBS))
    batch = await _measure(server_url, "batch", jobs)
    sequential = await _measure(server_url, "sequential", jobs)
    concurrent = await _measure(server_url, "concurrent", jobs)

    def row(name: str, seconds: float, ratio: float | None) -> dict[str, object]:
        out: dict[str, object] = {
            "name": name,
            "value": round(seconds * 1000, 1),
            "unit": "ms",
            "jobs_per_s": round(jobs / seconds, 1),
        }
        if ratio is not None:
            out["ratio"] = round(ratio, 1)
        return out

    return [
        row(f"POST /jobs/batch, {jobs} jobs in one request", batch, None),
        row(
            f"{jobs} x POST /jobs one after another (ratio: x batch time)",
            sequential,
            sequential / batch,
        ),
        row(
            f"{jobs} x POST /jobs, {CONCURRENT} at a time (ratio: x batch time)",
            concurrent,
            concurrent / batch,
        ),
    ]


if __name__ == "__main__":
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else JOBS
    for line in asyncio.run(run(SimpleNamespace(batch_jobs=jobs))):
        print(line)
