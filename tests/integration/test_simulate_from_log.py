"""`ftq simulate --from-log` on a log made by a real workload: jobs submitted through the
command path, admitted by the admission loop against the Fireworks simulator (each job
running its own duration), reconciled every `RECONCILE_S`. Simulated under the policy that
was live, the log reproduces the workload's admission order, and its waits within the
reconcile interval plus Fireworks' start-up time."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from events.domain.job import JOB
from events.domain.job_commands import SubmitJob
from service.admission.loop import AdmissionLoop
from service.capacity import CapacityReader
from service.commands import run_command
from service.fireworks import FireworksClient
from service.fireworks.simulator import SimConfig, Simulator, run_simulator
from service.settings import Settings
from tests.integration.admission_env import ACCOUNT, KEY, META, PAYLOAD, no_sleep

RECONCILE_S = 30.0
QUOTA = 8
T0 = 1_800_000_000.0
# The Fireworks simulator's jobs hold their GPUs from creation, so their start-up (CREATING,
# PENDING: the first 15 % of a run) is inside the runtime ftq observes; it adds no delay
# between an admission decision and the GPUs being taken.
STARTUP_S = 0.0


@dataclass
class Box:
    t: float = 0.0  # seconds after T0: ftq's clock and the simulator's


@pytest.fixture
async def world(pool: asyncpg.Pool) -> AsyncIterator[tuple[Box, Simulator, FireworksClient]]:
    box = Box()
    sim = Simulator(
        SimConfig(account_id=ACCOUNT, api_key=KEY, quota=QUOTA), clock=lambda: T0 + box.t
    )
    running = await run_simulator(sim=sim)
    try:
        async with aiohttp.ClientSession() as session:
            client = FireworksClient(
                session, running.base_url, KEY, ACCOUNT, max_attempts=1, sleep=no_sleep
            )
            yield box, sim, client
    finally:
        await running.stop()


def workload(seed: int) -> list[tuple[float, str, str, int, float]]:
    """(submitted after T0, job id, user id, gpus, duration): bursts that queue."""
    rng = random.Random(seed)
    users = [str(uuid.UUID(int=u + 1)) for u in range(3)]
    at, jobs = 0.0, []
    for k in range(18):
        at += rng.choice([0.0, 7.0, 45.0, 200.0, 700.0])
        jobs.append((at, str(uuid.UUID(int=1000 + k)), rng.choice(users),
                     rng.choice([1, 2, 4, 4, 8]), float(rng.randrange(120, 1500))))  # fmt: skip
    return jobs


async def run_workload(
    pool: asyncpg.Pool,
    box: Box,
    sim: Simulator,
    client: FireworksClient,
    db_url: str,
    policy: str,
) -> None:
    """Submit each job at its time; tick (full reconcile) every RECONCILE_S until all end."""
    jobs = workload(16)
    durations = {job_id: d for _, job_id, _, _, d in jobs}
    settings = Settings(fireworks_account_id=ACCOUNT, database_url=db_url,
                        reconcile_seconds=RECONCILE_S, policy=policy)  # type: ignore[arg-type]  # fmt: skip
    loop = AdmissionLoop(
        pool, client, settings, None,
        capacity=CapacityReader(client, settings, cache_seconds=0),
        clock=lambda: datetime.fromtimestamp(T0 + box.t, UTC),
    )  # fmt: skip
    pending = list(jobs)
    tick = 0.0
    while True:
        while pending and pending[0][0] < tick:
            at, job_id, user, gpus, _ = pending.pop(0)
            box.t = at
            command = SubmitJob(
                at=datetime.fromtimestamp(T0 + at, UTC), job_id=job_id, user_id=user,
                user_email="u@example.com", kind="SFT", display_name=None, gpu_count=gpus,
                fireworks_payload=PAYLOAD["SFT"],
            )  # fmt: skip
            await run_command(pool, JOB, job_id, command, META)
        box.t = tick
        summary = await loop.tick(full_reconcile=True)
        assert summary.error is None
        for job_id, job in sim.state.jobs.items():
            if job.created_at == T0 + tick:  # created by this tick: give it its duration
                job.job_seconds = durations[job_id]
        left = await pool.fetchval("SELECT count(*) FROM jobs WHERE state IN ('QUEUED','PROGRESS')")
        if not pending and left == 0:
            return
        tick += RECONCILE_S
        assert tick < 86400, "the workload never drained"


def simulate_log(db_url: str, tmp_path: Path) -> tuple[dict[str, object], list[dict[str, str]]]:
    per_job = tmp_path / "jobs.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FTQ_", "FIREWORKS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "simulate", "--from-log", "--json",
         "--per-job", str(per_job)],
        env={**env, "DATABASE_URL": db_url, "PYTHONPATH": str(Path.cwd())},
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with per_job.open(newline="") as file:
        return json.loads(done.stdout), list(csv.DictReader(file))


@pytest.mark.parametrize("policy", ["strict-fifo", "backfill"])
async def test_from_log_reproduces_the_live_admission_order_and_waits(
    pool: asyncpg.Pool,
    db_url: str,
    world: tuple[Box, Simulator, FireworksClient],
    tmp_path: Path,
    policy: str,
) -> None:
    box, sim, client = world
    await run_workload(pool, box, sim, client, db_url, policy)
    real = await pool.fetch(
        "SELECT e.stream_id::text AS id, (e.data->>'at')::timestamptz AS at, j.created_at"
        " FROM events e JOIN jobs j ON j.id::text = e.stream_id::text"
        " WHERE e.type = 'job.admission_started' ORDER BY e.position"
    )
    assert len(real) == 18
    real_wait = {r["id"]: (r["at"] - r["created_at"]).total_seconds() for r in real}
    assert max(real_wait.values()) > 600  # the workload queued

    report, rows = simulate_log(db_url, tmp_path)
    assert report["quota"] == QUOTA and report["jobs"] == 18
    assert list(report["policies"]) == [policy]  # type: ignore[arg-type]  # the live one
    sim_rows = {r["job_id"]: r for r in rows if r["policy"] == policy}
    recorded = {r["job_id"]: r for r in rows if r["policy"] == "recorded"}
    assert set(sim_rows) == set(recorded) == set(real_wait)
    for job_id, row in recorded.items():  # the recorded column is the log itself
        assert float(row["start"]) - float(row["submitted_at"]) == pytest.approx(
            real_wait[job_id], abs=1e-3
        )

    # The live loop admits at ticks: a simulated admission at s is live at the first tick
    # at or after s. Within a tick it admits in the policy's order (FIFO among the admitted).
    def tick_of(row: dict[str, str]) -> float:
        return math.ceil((float(row["start"]) - T0) / RECONCILE_S - 1e-9) * RECONCILE_S

    simulated_order = sorted(
        sim_rows, key=lambda j: (tick_of(sim_rows[j]), float(sim_rows[j]["submitted_at"]), j)
    )
    assert simulated_order == [r["id"] for r in real]
    for job_id, row in sim_rows.items():
        wait = float(row["start"]) - float(row["submitted_at"])
        assert abs(wait - real_wait[job_id]) <= RECONCILE_S + STARTUP_S, job_id


async def test_from_log_estimates_unfinished_jobs_and_leaves_out_queued_cancels(
    pool: asyncpg.Pool, db_url: str, world: tuple[Box, Simulator, FireworksClient],
    tmp_path: Path,
) -> None:  # fmt: skip
    from events.domain.job_commands import RequestCancel  # noqa: PLC0415

    box, _, client = world
    settings = Settings(fireworks_account_id=ACCOUNT, database_url=db_url)
    loop = AdmissionLoop(pool, client, settings, None,
                         capacity=CapacityReader(client, settings, cache_seconds=0),
                         clock=lambda: datetime.fromtimestamp(T0 + box.t, UTC))  # fmt: skip
    user = str(uuid.UUID(int=9))
    ids = [str(uuid.UUID(int=2000 + k)) for k in range(3)]
    for k, job_id in enumerate(ids):
        at = datetime.fromtimestamp(T0, UTC) + timedelta(seconds=k)
        await run_command(pool, JOB, job_id, SubmitJob(
            at=at, job_id=job_id, user_id=user, user_email="u@example.com", kind="SFT",
            display_name=None, gpu_count=8, fireworks_payload=PAYLOAD["SFT"]), META)  # fmt: skip
    box.t = 10
    await loop.tick(full_reconcile=True)  # the first runs; the others queue (8 GPUs each)
    cancel = RequestCancel(at=datetime.fromtimestamp(T0 + 11, UTC), by="test")
    await run_command(pool, JOB, ids[2], cancel, META)
    box.t = 12
    await loop.tick(full_reconcile=True)
    report, rows = simulate_log(db_url, tmp_path)
    assert report["jobs"] == 2  # the cancelled queued job is left out
    simulated = {r["job_id"] for r in rows if r["policy"] == "strict-fifo"}
    assert simulated == set(ids[:2])  # running and queued ones run for estimated times
