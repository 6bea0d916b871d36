"""A real database + the in-process Fireworks simulator + a way to build admission loops."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from events.domain.job import JOB
from events.domain.job_commands import SubmitJob
from events.store import locks
from service.admission.admit import Checkpoint
from service.admission.loop import AdmissionLoop
from service.capacity import CapacityReader
from service.commands import run_command
from service.fireworks import FireworksClient, Kind
from service.fireworks.simulator import SimConfig, Simulator, run_simulator
from service.settings import Settings

ACCOUNT = "acct"
KEY = "sim-key"
META = {"actor": "test"}
PAYLOAD: dict[Kind, dict[str, Any]] = {
    "SFT": {"dataset": "accounts/a/datasets/d", "baseModel": "accounts/fireworks/models/m"},
    "DPO": {"dataset": "accounts/a/datasets/d", "trainingConfig": {"baseModel": "m"}},
    "RFT": {"dataset": "accounts/a/datasets/d", "evaluator": "accounts/a/evaluators/e"},
}


# An advisory lock on one bigint key shows in pg_locks as its two halves, objsubid 1.
_GATE_WAITERS = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = $1::bigint::oid AND objid = $2::bigint::oid
"""


async def wait_for_gate_waiters(pool: asyncpg.Pool, count: int, timeout: float = 5) -> None:
    """Return once `count` transactions wait for the admission gate (ungranted in
    pg_locks): proof that they reached it and are held there, not merely slow."""
    key = locks.ADMISSION_GATE
    async with asyncio.timeout(timeout):
        while await pool.fetchval(_GATE_WAITERS, key >> 32, key & 0xFFFFFFFF) < count:
            await asyncio.sleep(0.005)


class Clock:
    """Every call is 1 ms later: submit order is FIFO order."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


async def no_sleep(_: float) -> None:
    return None


@dataclass
class Env:
    sim: Simulator
    client: FireworksClient
    pool: asyncpg.Pool
    db_url: str
    settings: Settings = field(default_factory=lambda: Settings(fireworks_account_id=ACCOUNT))
    clock: Clock = field(default_factory=Clock)

    def loop(
        self,
        *,
        checkpoint: Checkpoint | None = None,
        capacity: CapacityReader | None = None,
        **settings: Any,
    ) -> AdmissionLoop:
        s = Settings(**{"fireworks_account_id": ACCOUNT, "database_url": self.db_url, **settings})
        cap = capacity or CapacityReader(self.client, s, cache_seconds=0)
        return AdmissionLoop(
            self.pool,
            self.client,
            s,
            None,
            capacity=cap,
            clock=self.clock,
            checkpoint=checkpoint,
            follower_retry_s=0.05,
        )

    async def submit(
        self,
        kind: Kind = "SFT",
        gpus: int = 4,
        user: str | None = None,
        payload: dict[str, Any] | None = None,
        gpu_type: str = "h200",
        priority: int = 50,
    ) -> str:
        job_id = str(uuid.uuid4())
        command = SubmitJob(
            at=self.clock(),
            job_id=job_id,
            user_id=user or str(uuid.uuid4()),
            user_email="u@example.com",
            kind=kind,
            display_name=None,
            gpu_count=gpus,
            fireworks_payload=PAYLOAD[kind] if payload is None else payload,
            gpu_type=gpu_type,
            priority=priority,
        )
        await run_command(self.pool, JOB, job_id, command, META)
        return job_id

    async def row(self, job_id: str) -> asyncpg.Record:
        row = await self.pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        assert row is not None
        return row

    async def states(self, *job_ids: str) -> list[str]:
        return [(await self.row(j))["state"] for j in job_ids]

    async def event_types(self, job_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT type FROM events WHERE stream_id = $1 ORDER BY stream_version", job_id
        )
        return [r[0] for r in rows]


@pytest.fixture
async def env(pool: asyncpg.Pool, db_url: str) -> AsyncIterator[Env]:
    config = SimConfig(account_id=ACCOUNT, api_key=KEY, quota=8, job_seconds=1000.0)
    sim = Simulator(config, clock=lambda: 1_800_000_000.0)
    running = await run_simulator(sim=sim)
    try:
        async with aiohttp.ClientSession() as session:
            client = FireworksClient(
                session, running.base_url, KEY, ACCOUNT, max_attempts=1, sleep=no_sleep
            )
            yield Env(sim, client, pool, db_url)
    finally:
        await running.stop()
