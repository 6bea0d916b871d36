"""The real app plus an admission loop of the test's own, on the app's simulator, with an
injected clock: runtime limits and stuck jobs end to end without waiting for minutes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from events.store.log import Cursor, read_all
from projections.audit import audit
from projections.rebuild import verify
from service.admission.loop import AdmissionLoop
from service.capacity import CapacityReader
from service.fireworks import FireworksClient
from service.settings import Settings

Client = AsyncTestClient[Litestar]


class Clock:
    """Real time at the start, then only as far as the test moves it (1 ms per reading)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def forward(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@dataclass
class Ops:
    client: Client
    loop: AdmissionLoop
    clock: Clock
    sim_url: str
    session: aiohttp.ClientSession

    async def sim(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Steer the app's simulator over its `/_sim` control routes."""
        async with self.session.request(method, f"{self.sim_url}{path}", json=body) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def clean(self) -> None:
        """`ftq audit` finds nothing in the whole log and the projections equal a rebuild."""
        async with self.loop._pool.acquire() as conn:
            rows = await read_all(conn, Cursor.START, 100_000)
            assert [v.message for v in audit(rows, default_cap=8)] == []
            assert await verify(conn) == []

    async def tick(self) -> None:
        summary = await self.loop.tick()
        assert summary.error is None, summary.error


def make_loop(
    pool: asyncpg.Pool, app: Litestar, session: aiohttp.ClientSession, clock: Clock, **over: Any
) -> tuple[AdmissionLoop, str]:
    runtime = app.state.runtime
    assert runtime.simulator is not None
    settings: Settings = msgspec.structs.replace(runtime.settings, **over)
    client = FireworksClient(
        session, runtime.simulator.base_url, "sim-key", settings.fireworks_account_id,
        max_attempts=1,
    )  # fmt: skip
    capacity = CapacityReader(client, settings, cache_seconds=0)
    loop = AdmissionLoop(pool, client, settings, None, capacity=capacity, clock=clock)
    return loop, runtime.simulator.base_url


@pytest.fixture
async def ops(pool: asyncpg.Pool, app: Litestar, app_client: Client) -> AsyncIterator[Ops]:
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        loop, sim_url = make_loop(pool, app, session, clock)
        yield Ops(app_client, loop, clock, sim_url, session)
