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


async def test_a_long_queue_is_forecast_in_a_process_to_the_same_etas(pool: asyncpg.Pool) -> None:
    """A queue at least `process_at` long is simulated in a process of its own (off the
    GIL); the ETAs are the ones the thread path gives."""
    settings = Settings(fireworks_gpu_quota=8)
    at = datetime.now(UTC)
    for n in range(6):  # 6 jobs of 4 GPUs from 3 users on 8 GPUs: some wait for others
        job_id = str(uuid.uuid4())
        command = SubmitJob(
            at=at, job_id=job_id, user_id=f"00000000-0000-0000-0000-00000000000{n % 3}",
            user_email="u@example.com", kind="SFT", display_name=None, gpu_count=4,
            fireworks_payload=PAYLOAD["SFT"],
        )  # fmt: skip
        await run_command(pool, JOB, job_id, command, META)
    fixed = lambda: at  # noqa: E731 - one time for both forecasts
    capacity = CapacityReader(None, settings)
    threaded = EtaForecaster(pool, settings, capacity, None, clock=fixed, process_at=10**9)
    separate = EtaForecaster(pool, settings, capacity, None, clock=fixed, process_at=1)
    try:
        in_thread = await threaded.rebuild()
        in_process = await separate.rebuild()
        assert separate._process is not None  # it did run in a process
        assert threaded._process is None
    finally:
        await threaded.stop()
        await separate.stop()
    assert separate._process is None  # stopped with the forecaster
    assert len(in_thread.etas) == 6 and in_process.etas == in_thread.etas
    assert len(set(in_thread.etas.values())) > 1  # not all at once: the forecast ran
