"""Live ETAs (service.eta): every QUEUED job gets `eta` in GET /jobs/{id}, GET /jobs and GET
/queue from a forecast rebuilt in the background after events; other jobs have none, and a
slow rebuild never holds a request."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import eta as eta_module
from tests.api.conftest import Users, bearer, sft

Client = AsyncTestClient[Litestar]


async def _until(check: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_queued_jobs_get_etas_from_a_forward_simulation(
    app_client: Client, users: Users
) -> None:
    ids = []
    for key in (users.alice, users.bob, users.alice):  # 4 GPUs each, 8 GPUs, cap 1
        job = (await app_client.post("/jobs", json=sft(gpu_count=4), headers=bearer(key))).json()
        ids.append(job["id"])
    first, bob, second = ids

    async def queue_with_etas() -> list[dict[str, Any]] | None:
        queue = (await app_client.get("/queue", headers=bearer(users.admin))).json()
        known = [e for e in queue if e.get("eta")]
        return queue if len(known) == 3 else None

    queue = await _until(queue_with_etas)
    etas = {e["id"]: datetime.fromisoformat(e["eta"]) for e in queue}
    # alice's first and bob's start at the next pass; alice's second when her first ends,
    # after the default estimate (2 h: no job has finished yet)
    assert etas[first] == etas[bob]
    assert (etas[second] - etas[first]).total_seconds() == 7200
    one = (await app_client.get(f"/jobs/{second}", headers=bearer(users.alice))).json()
    assert datetime.fromisoformat(one["eta"]) == etas[second]
    listed = (await app_client.get("/jobs", headers=bearer(users.alice))).json()
    rows = listed["jobs"] if isinstance(listed, dict) else listed
    assert {r["id"]: r.get("eta") is not None for r in rows} == {first: True, second: True}


async def test_only_queued_jobs_have_an_eta(app_client: Client, users: Users) -> None:
    kept = (await app_client.post("/jobs", json=sft(gpu_count=1), headers=bearer(users.bob))).json()
    gone = (await app_client.post("/jobs", json=sft(gpu_count=1), headers=bearer(users.bob))).json()

    async def both_have_etas() -> bool:
        got = [(await app_client.get(f"/jobs/{j['id']}", headers=bearer(users.bob))).json()
               for j in (kept, gone)]  # fmt: skip
        return all(g.get("eta") is not None for g in got)

    await _until(both_have_etas)
    r = await app_client.delete(f"/jobs/{gone['id']}", headers=bearer(users.bob))
    assert r.status_code == 200, r.text
    # read at once: the forecast may still be the one made while it was QUEUED
    cancelled = (await app_client.get(f"/jobs/{gone['id']}", headers=bearer(users.bob))).json()
    assert cancelled["state"] == "CANCELLED" and "eta" not in cancelled
    queue = (await app_client.get("/queue", headers=bearer(users.bob))).json()
    assert [e["id"] for e in queue] == [kept["id"]] and queue[0]["eta"]


async def test_a_slow_rebuild_never_holds_a_request(
    app_client: Client, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(*args: Any, **kwargs: Any) -> dict[str, float]:
        loop.call_soon_threadsafe(started.set)
        time.sleep(3.0)  # a forecast that takes seconds (in its thread)
        return {}

    monkeypatch.setattr(eta_module, "live_etas", slow)
    job = (await app_client.post("/jobs", json=sft(gpu_count=1), headers=bearer(users.bob))).json()
    try:
        await asyncio.wait_for(started.wait(), 10)
    except TimeoutError:
        pytest.skip("the forecast ran on the app's loop thread; started is on ours")
    t0 = time.monotonic()
    r = await app_client.get(f"/jobs/{job['id']}", headers=bearer(users.bob))
    q = await app_client.get("/queue", headers=bearer(users.bob))
    assert r.status_code == 200 and q.status_code == 200
    assert time.monotonic() - t0 < 1.0
