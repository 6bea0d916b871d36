"""Benchmark: the dashboard's pages with 10k QUEUED and 100k finished jobs (server time per
page, target < 300 ms), and 200 open dashboard sessions (extra memory < 50 MB; an update
reaches every one within 2 s).

A real server (uvicorn, in-process, admission loop off so the queue stays put) on a fresh
database. Users, keys and one job go through the commands; the 110k other jobs are written
straight into the `jobs` projection (the pages read projections only; folding 110k jobs
through the log would take minutes and measure the log, not the pages). Page times are
measured from a client on the same machine (so they include a little HTTP overhead). The
200 sessions are light clients: each signs in (its own session) and follows
`/events/stream` with its cookie, as the queue page's EventSource does; memory is this
process's RSS (server and clients together: an upper bound for the server's share).
Run: `python -m bench ui` or `python -m bench.ui [queued] [finished] [sessions]`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Final

import aiohttp
import asyncpg

from bench.databases import fresh_database
from bench.streams import _server
from events.domain.job import JOB
from events.domain.job_commands import SubmitJob
from events.store.ids import new_job_id
from service import directory
from service.commands import run_command
from service.database import resolve_database_url

TARGET_PAGE_MS: Final = 300.0
TARGET_MEMORY_MB: Final = 50.0
TARGET_UPDATE_S: Final = 2.0
META: Final = {"actor": "bench"}
PAYLOAD: Final = {"baseModel": "accounts/fireworks/models/qwen3-14b", "dataset": "d-1"}
USERS: Final = 20
ROUNDS: Final = 15

# The GPU-hours chart reads the accounting projection, so the finished jobs go there too.
_USAGE: Final = """
INSERT INTO job_usage (job_id, user_id, user_email, kind, gpu_count, admitted_at, completed_at)
SELECT id, user_id, user_email, kind, gpu_count, started_at, completed_at
FROM jobs WHERE started_at IS NOT NULL
"""
_FILL: Final = """
INSERT INTO jobs (id, user_id, user_email, kind, state, display_name, gpu_count,
                  fireworks_payload, created_at, started_at, completed_at, version, last_position)
SELECT gen_random_uuid(), u.id, u.email, (ARRAY['SFT','DPO','RFT'])[1 + g % 3], $1,
       'job-' || g, 1 + g % 4, '{"dataset": "d-1"}'::jsonb,
       now() - make_interval(secs => $3 * 1.0 + g * $4),
       CASE WHEN $1 = 'QUEUED' THEN NULL
            ELSE now() - make_interval(secs => $3 * 1.0 + g * $4) + interval '5 minutes' END,
       CASE WHEN $1 = 'QUEUED' THEN NULL
            ELSE now() - make_interval(secs => $3 * 1.0 + g * $4) + interval '65 minutes' END,
       1, 0
FROM generate_series(1, $2) g
JOIN LATERAL (SELECT id, email FROM users ORDER BY id OFFSET g % $5 LIMIT 1) u ON true
"""


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _seed(pool: asyncpg.Pool, queued: int, finished: int) -> tuple[str, str, str]:
    """(admin key, a member key, that member's job id)."""
    await directory.add_user(pool, "admin@example.com", "admin", META)
    admin = (await directory.issue_key(pool, "admin@example.com", None, META)).key
    for i in range(USERS):
        await directory.add_user(pool, f"user{i}@example.com", "member", META)
    member = (await directory.issue_key(pool, "user0@example.com", None, META)).key
    user_id = await pool.fetchval("SELECT id::text FROM users WHERE email = 'user0@example.com'")
    job_id = new_job_id()
    command = SubmitJob(
        at=datetime.now(UTC),
        job_id=job_id,
        user_id=user_id,
        user_email="user0@example.com",
        kind="SFT",
        display_name="mine",
        gpu_count=1,
        fireworks_payload=PAYLOAD,
    )
    await run_command(pool, JOB, job_id, command, META)
    users = USERS + 1
    await pool.execute(_FILL, "SUCCESS", finished, 3600, 20.0, users)  # over ~23 days
    await pool.execute(_FILL, "QUEUED", queued, 0, 0.05, users)
    await pool.execute(_USAGE)
    await pool.execute("ANALYZE jobs")
    return admin, member, job_id


async def _sign_in(session: aiohttp.ClientSession, key: str) -> str:
    async with session.post("/ui/login", data={"key": key}, allow_redirects=False) as r:
        assert r.status == 303, r.status
        return r.cookies["ftq_session"].value


async def _page_rows(base: str, cookies: dict[str, str], job_id: str) -> list[dict[str, object]]:
    paths = {
        "queue page": "/ui/queue",
        "queue live refresh": "/ui/queue/body",
        "jobs page": "/ui/jobs",
        "jobs page: filtered, searched": "/ui/jobs?state=SUCCESS&kind=DPO&q=job-99",
        "job page": f"/ui/jobs/{job_id}",
        "scheduler page": "/ui/scheduler",
        "usage page": "/ui/usage",
        **{
            f"usage data: {c}, month": f"/ui/usage/data?chart={c}&range=month"
            for c in ("gpus", "depth", "waits", "hours")
        },
    }
    rows: list[dict[str, object]] = []
    async with aiohttp.ClientSession(base) as session:
        for who, cookie in cookies.items():
            for name, path in paths.items():
                if who == "member" and path == "/ui/scheduler":
                    continue
                times = []
                for _ in range(ROUNDS):
                    started = time.perf_counter()
                    async with session.get(path, cookies={"ftq_session": cookie}) as r:
                        await r.read()
                        assert r.status == 200, (path, r.status)
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                rows.append(
                    {
                        "name": f"{name} ({who})",
                        "median_ms": round(statistics.median(times), 1),
                        "p95_ms": round(p95, 1),
                        "target_ms": TARGET_PAGE_MS,
                        "ok": p95 < TARGET_PAGE_MS,
                    }
                )
    return rows


async def _follow(
    base: str, cookie: str, after: int, ready: asyncio.Event, got: list[float]
) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
    async with (
        aiohttp.ClientSession(base, timeout=timeout) as session,
        session.get(f"/events/stream?after={after}", cookies={"ftq_session": cookie}) as resp,
    ):
        resp.raise_for_status()
        ready.set()
        while True:
            line = await resp.content.readline()
            if not line:
                raise AssertionError("stream ended early")
            if line.startswith(b"event: job.submitted"):
                got.append(time.perf_counter())
                return


async def _sessions_row(
    base: str, pool: asyncpg.Pool, admin: str, sessions: int
) -> dict[str, object]:
    async with aiohttp.ClientSession(base) as session:
        cookies = [await _sign_in(session, admin) for _ in range(sessions)]
    user_id = await pool.fetchval("SELECT id::text FROM users WHERE email = 'user1@example.com'")
    head = int(await pool.fetchval("SELECT coalesce(max(position), 0) FROM events"))
    gc.collect()
    before = _rss_mb()
    ready = [asyncio.Event() for _ in range(sessions)]
    got: list[float] = []
    followers = [
        asyncio.create_task(_follow(base, cookies[i], head, ready[i], got)) for i in range(sessions)
    ]
    async with asyncio.timeout(60):
        await asyncio.gather(*(e.wait() for e in ready))
    await asyncio.sleep(1.0)
    gc.collect()
    extra = _rss_mb() - before
    job_id = new_job_id()
    command = SubmitJob(
        at=datetime.now(UTC),
        job_id=job_id,
        user_id=user_id,
        user_email="user1@example.com",
        kind="SFT",
        display_name=None,
        gpu_count=1,
        fireworks_payload=PAYLOAD,
    )
    sent = time.perf_counter()
    await run_command(pool, JOB, job_id, command, META)
    async with asyncio.timeout(30):
        await asyncio.gather(*followers)
    slowest = max(got) - sent
    return {
        "name": f"{sessions} open dashboard sessions",
        "value": round(extra, 1),
        "unit": "MB more RSS",
        "update_to_all_s": round(slowest, 3),
        "target_mb": TARGET_MEMORY_MB,
        "target_update_s": TARGET_UPDATE_S,
        "ok": extra < TARGET_MEMORY_MB and slowest < TARGET_UPDATE_S and len(got) == sessions,
    }


async def measure(
    db_url: str, queued: int = 10_000, finished: int = 100_000, sessions: int = 200
) -> list[dict[str, object]]:
    async with asyncpg.create_pool(db_url, min_size=1, max_size=4) as pool:
        admin, member, job_id = await _seed(pool, queued, finished)
        async with _server(db_url) as base:
            async with aiohttp.ClientSession(base) as s:
                cookies = {"admin": await _sign_in(s, admin), "member": await _sign_in(s, member)}
            rows = await _page_rows(base, cookies, job_id)
            rows.append(await _sessions_row(base, pool, admin, sessions))
    for row in rows:
        row.setdefault("queued", queued)
        row.setdefault("finished", finished)
    return rows


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py` (`ctx.ui_queued`, `ctx.ui_finished`,
    `ctx.ui_sessions` override the sizes)."""
    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = await asyncio.to_thread(resolve_database_url, None)
    sizes: dict[str, Any] = {
        "queued": int(getattr(ctx, "ui_queued", 10_000)),
        "finished": int(getattr(ctx, "ui_finished", 100_000)),
        "sessions": int(getattr(ctx, "ui_sessions", 200)),
    }
    async with fresh_database(server_url) as db_url:
        return await measure(db_url, **sizes)


if __name__ == "__main__":
    args = sys.argv[1:]
    ctx = SimpleNamespace(
        ui_queued=int(args[0]) if args else 10_000,
        ui_finished=int(args[1]) if len(args) > 1 else 100_000,
        ui_sessions=int(args[2]) if len(args) > 2 else 200,
    )
    with contextlib.suppress(KeyboardInterrupt):
        for row in asyncio.run(run(ctx)):
            print(row)
