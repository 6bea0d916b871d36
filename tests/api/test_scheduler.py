"""The app with the admission loop running: a submitted job is admitted to the simulator,
and GET /admin/scheduler reports the leader and the last tick."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from tests.api.conftest import Users, bearer, sft

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def app_client(api_settings: Settings) -> AsyncIterator[Client]:
    app = create_app(api_settings, run_scheduler=True)
    async with AsyncTestClient(app=app) as client:
        yield client


async def test_submitted_job_is_admitted(app_client: Client, users: Users) -> None:
    job = (await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))).json()
    state = job["state"]
    async with asyncio.timeout(20):
        while state == "QUEUED":
            await asyncio.sleep(0.05)
            got = await app_client.get(f"/jobs/{job['id']}", headers=bearer(users.alice))
            state = got.json()["state"]
    assert state == "PROGRESS"
    assert got.json()["fireworks_job_name"]
    status = (await app_client.get("/admin/scheduler", headers=bearer(users.admin))).json()
    assert status["leader"] is True and status["running_here"] is True
    assert status["last_tick"] is not None and "duration_ms" in status["last_tick"]
    metrics = (await app_client.get("/metrics")).text
    assert "ftq_is_leader 1.0" in metrics
