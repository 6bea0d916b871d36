"""service.eta without the app: the forecaster rebuilds on its timer (no events needed)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from events.domain.job import JOB
from events.domain.job_commands import SubmitJob
from service.capacity import CapacityReader
from service.commands import run_command
from service.eta import EtaForecaster
from service.settings import Settings
from tests.integration.admission_env import META, PAYLOAD


async def test_rebuilt_at_least_every_interval_without_events(pool: asyncpg.Pool) -> None:
    settings = Settings(fireworks_gpu_quota=8)
    eta = EtaForecaster(pool, settings, CapacityReader(None, settings), None, interval_s=0.2)
    await eta.start()
    try:
        job_id = str(uuid.uuid4())
        command = SubmitJob(
            at=datetime.now(UTC), job_id=job_id, user_id=str(uuid.uuid4()),
            user_email="u@example.com", kind="SFT", display_name=None, gpu_count=4,
            fireworks_payload=PAYLOAD["SFT"],
        )  # fmt: skip
        await run_command(pool, JOB, job_id, command, META)
        for _ in range(50):
            if eta.eta(job_id) is not None:
                break
            await asyncio.sleep(0.1)
        assert eta.eta(job_id) is not None
        assert eta.forecast is not None and eta.forecast.queued == 1
    finally:
        await eta.stop()
