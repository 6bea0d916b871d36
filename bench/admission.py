"""Benchmark: admission latency and planning cost.

1. submit → admitted with free capacity: the real AdmissionLoop (woken by NOTIFY through a
   LogWatcher) against the in-process simulator with zero latency; jobs of distinct users
   are submitted at a steady rate; latency = recorded_at(job.admitted) - recorded_at
   (job.submitted), both stamped by PostgreSQL (targets p50 < 10 ms, p99 < 50 ms).
2. One pass over 100k queued jobs of 10k users, half of them at their cap (target < 50 ms):
   the pure planner (events.domain.scheduling), a row per policy with and without the
   explanations, and the DB reads an admission decision does (paused flag, PROGRESS jobs
   and caps; the queue's head).
   The 100k rows are COPYed straight into the `jobs` projection (no events): only the read is
   measured, not how the rows got there.
Run: `python -m bench.admission [jobs]` (DATABASE_URL, or an embedded server)."""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import structlog

from bench.databases import fresh_database
from events.domain.job import JOB
from events.domain.job_commands import SubmitJob
from events.domain.scheduling import (
    POLICIES,
    Job,
    Limits,
    Policy,
    Running,
    RuntimeEstimator,
    pending_placements,
)
from events.domain.scheduling import plan as make_plan
from events.store.ids import new_job_id
from events.store.log import Connection
from events.store.tail import LogWatcher
from service.admission.history import SchedulingHistory
from service.admission.loop import AdmissionLoop
from service.admission.queue import first_admission, load_planner_inputs, load_queue, pass_inputs
from service.capacity import CapacityReader
from service.commands import run_command
from service.database import resolve_database_url
from service.fireworks import FireworksClient
from service.fireworks.simulator import SimConfig, Simulator, run_simulator
from service.settings import Settings

META = {"actor": "bench"}
PAYLOAD = {"baseModel": "accounts/fireworks/models/qwen3-14b", "dataset": "d-1"}
ACCOUNT, KEY = "bench", "bench-key"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency(db_url: str, jobs: int = 200, rate: float = 50.0) -> dict[str, object]:
    sim = Simulator(SimConfig(account_id=ACCOUNT, api_key=KEY, quota=100_000, job_seconds=1e6))
    running = await run_simulator(sim=sim)
    settings = Settings(fireworks_account_id=ACCOUNT, database_url=db_url, reconcile_seconds=60)
    watcher = LogWatcher(db_url)
    try:
        async with (
            aiohttp.ClientSession() as session,
            asyncpg.create_pool(db_url, min_size=2, max_size=8) as pool,
        ):
            await watcher.start()
            client = FireworksClient(session, running.base_url, KEY, ACCOUNT)
            loop = AdmissionLoop(
                pool, client, settings, watcher, capacity=CapacityReader(client, settings)
            )
            await loop.start()
            try:
                async with asyncio.timeout(10):
                    while not loop.status().leader:  # noqa: ASYNC110 - polling a status, deliberately
                        await asyncio.sleep(0.01)
                gc.freeze()  # as the server does once it has started (service.app)
                start = time.perf_counter()
                for i in range(jobs):
                    await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                    job_id = new_job_id()
                    command = SubmitJob(
                        at=datetime.now(UTC), job_id=job_id, user_id=str(uuid.uuid4()),
                        user_email="b@example.com", kind="SFT", display_name=None,
                        gpu_count=1, fireworks_payload=PAYLOAD,
                    )  # fmt: skip
                    await run_command(pool, JOB, job_id, command, META)
                async with asyncio.timeout(60):
                    while (  # noqa: ASYNC110
                        await pool.fetchval(
                            "SELECT count(*) FROM events WHERE type = 'job.admitted'"
                        )
                        < jobs
                    ):
                        await asyncio.sleep(0.05)
            finally:
                await loop.stop()
            rows = await pool.fetch(
                """SELECT extract(epoch FROM a.recorded_at - s.recorded_at) * 1000,
                          extract(epoch FROM st.recorded_at - s.recorded_at) * 1000
                   FROM events s
                   JOIN events a ON a.stream_id = s.stream_id AND a.type = 'job.admitted'
                   JOIN events st ON st.stream_id = s.stream_id
                        AND st.type = 'job.admission_started'
                   WHERE s.type = 'job.submitted'"""
            )
    finally:
        await watcher.stop()
        await running.stop()
    admitted = [float(r[0]) for r in rows]
    started = [float(r[1]) for r in rows]
    return {
        "bench": "admission.submit_to_admitted",
        "jobs": len(admitted),
        "p50_ms": round(statistics.median(admitted), 2),
        "p99_ms": round(_pct(admitted, 0.99), 2),
        "max_ms": round(max(admitted), 2),
        "p50_to_admission_started_ms": round(statistics.median(started), 2),
        "p99_to_admission_started_ms": round(_pct(started, 0.99), 2),
        "target": "p50 < 10 ms, p99 < 50 ms",
    }


T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)


def _workload(jobs: int, users: int) -> tuple[list[Job], list[Running]]:
    """`jobs` queued of `users` users (1..8 GPUs, two GPU types, a few priorities), and half
    the users with a job in PROGRESS (at their cap of 1)."""
    user_ids = [str(uuid.UUID(int=u + 1)) for u in range(users)]
    queue = [
        Job(new_job_id(), user_ids[i % users], T0 + timedelta(milliseconds=i), 1 + i % 8,
            "h200" if i % 5 else "b200")
        for i in range(jobs)
    ]  # fmt: skip
    running = [
        Running(f"r{n}", u, 1, T0, NOW + timedelta(minutes=1 + n % 240), "h200")
        for n, u in enumerate(user_ids[: users // 2])
    ]
    return queue, running


def planner(jobs: int = 100_000, users: int = 10_000, repeat: int = 5) -> list[dict[str, object]]:
    """One pass per policy over `jobs` queued, explanations included (positions and reasons
    of every job), and without (what an admission decision needs); and the explained pass
    with every job's (position, reason) read into a dict as the queue views do
    (`Plan.pending` builds the reasons of a frozen pass's tail when read)."""
    queue, running = _workload(jobs, users)
    estimator = RuntimeEstimator(120)
    for n in range(2000):  # a history to estimate from
        estimator.observe(f"u{n % 50}", "SFT", 1 + n % 8, 600.0 + 13 * n)
    usage = {r.user_id: float(n) for n, r in enumerate(running)}
    limits = Limits(big_job_gpus=8, cap_small=1, cap_big=1, big_job_reserve=4)
    headroom = {"h200": 64, "b200": 16}
    out: list[dict[str, object]] = []
    for name in POLICIES:
        policy = Policy(name)
        for explain in (False, True):
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                make_plan(
                    queue, running, headroom, limits, policy, NOW,
                    estimate=estimator.estimate, usage=usage, explain=explain,
                )  # fmt: skip
                times.append((time.perf_counter() - t0) * 1000)
            out.append({
                "bench": f"admission.plan_pure{'_explain' if explain else ''}",
                "policy": name, "queued": jobs, "users": users,
                "best_ms": round(min(times), 2), "median_ms": round(statistics.median(times), 2),
                "target": "< 50 ms",
            })  # fmt: skip
        times = []  # and reading every explanation (Plan.pending builds them when read)
        for _ in range(repeat):
            t0 = time.perf_counter()
            done = make_plan(
                queue, running, headroom, limits, policy, NOW,
                estimate=estimator.estimate, usage=usage, explain=True,
            )  # fmt: skip
            placed = dict(pending_placements(done.pending))  # as the queue views do
            times.append((time.perf_counter() - t0) * 1000)
        assert len(placed) + len(done.admit) == jobs
        out.append({
            "bench": "admission.plan_pure_explain_read", "policy": name, "queued": jobs,
            "users": users, "best_ms": round(min(times), 2),
            "median_ms": round(statistics.median(times), 2), "target": "-",
        })  # fmt: skip
    return out


async def fill_queue(conn: Connection, jobs: int = 100_000, users: int = 10_000) -> int:
    """COPY `_workload`'s queue straight into the `jobs` projection (no events), and its
    jobs in PROGRESS: a long queue to measure reads and plans against. Returns its length."""
    queue, running = _workload(jobs, users)
    await conn.copy_records_to_table(
        "jobs",
        columns=["id", "user_id", "user_email", "kind", "state", "gpu_count",
                 "fireworks_payload", "created_at", "version", "last_position"],
        records=[
            (uuid.UUID(j.job_id), uuid.UUID(j.user_id), "b@example.com", "SFT",
             "QUEUED", j.gpu_count, "{}", j.created_at, 1, 0)
            for j in queue
        ],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "jobs",
        columns=["id", "user_id", "user_email", "kind", "state", "gpu_count",
                 "fireworks_payload", "created_at", "started_at", "version", "last_position"],
        records=[
            (uuid.uuid4(), uuid.UUID(r.user_id), "b@example.com", "SFT", "PROGRESS",
             r.gpu_count, "{}", T0, T0, 2, 0)
            for r in running
        ],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "job_scheduling",
        columns=["job_id", "gpu_type", "priority"],
        records=[(uuid.UUID(j.job_id), j.gpu_type, 50) for j in queue if j.gpu_type != "h200"],
    )
    await conn.execute("ANALYZE jobs; ANALYZE job_scheduling")
    return len(queue)


async def tick_read(db_url: str, jobs: int = 100_000, users: int = 10_000) -> dict[str, object]:
    async with asyncpg.create_pool(db_url, min_size=1, max_size=2) as pool:
        async with pool.acquire() as conn:
            await fill_queue(conn, jobs, users)
        pass_times, whole_times = [], []
        settings = Settings()
        history = SchedulingHistory(120, 168)
        for _ in range(5):
            t0 = time.perf_counter()
            async with pool.acquire() as conn:  # what a decision does: the queue's head only
                inputs = await load_planner_inputs(conn)
                p = pass_inputs(inputs, settings, history, NOW)
                await first_admission(conn, p, {"h200": 64, "b200": 16})
            pass_times.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            async with pool.acquire() as conn:  # for comparison: reading the whole queue
                whole = await load_queue(conn)
            whole_times.append((time.perf_counter() - t0) * 1000)
    return {
        "bench": "admission.pass_with_db", "queued": len(whole), "users": users,
        "best_ms": round(min(pass_times), 2),
        "median_ms": round(statistics.median(pass_times), 2),
        "whole_queue_read_median_ms": round(statistics.median(whole_times), 2),
        "target": "< 50 ms",
    }  # fmt: skip


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py`; `ctx.database_url` and `ctx.admission_jobs`."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = await asyncio.to_thread(resolve_database_url, None)
    jobs = int(getattr(ctx, "admission_jobs", 200))
    results: list[dict[str, object]] = []
    async with fresh_database(server_url) as db_url:
        results.append(await latency(db_url, jobs))
    results.extend(planner())
    async with fresh_database(server_url) as db_url:
        results.append(await tick_read(db_url))
    return results


if __name__ == "__main__":
    context = type("Ctx", (), {})()
    if len(sys.argv) > 1:
        context.admission_jobs = int(sys.argv[1])
    for row in asyncio.run(run(context)):
        print(row)
