"""Capacity per GPU type: a job's `gpu_type` picks its quota (`training-<type>-count`), the
headroom and the budget hold per type, and a strict pass stops only the jobs of the type that
does not fit, never another type's. The simulator keeps one quota per type and refuses a
create over its own type's quota."""

from __future__ import annotations

import msgspec

from service.capacity import CapacityReader
from tests.integration.admission_env import Env, env

__all__ = ["env"]


async def test_a_full_b200_quota_stops_only_b200_jobs(env: Env) -> None:
    env.sim.state.patch_quota("training-b200-count", {"value": 8, "maxValue": 8}, True)
    b1 = await env.submit(gpus=8, gpu_type="b200")
    b2 = await env.submit(gpus=4, gpu_type="b200")  # does not fit: stops b200 only
    h1 = await env.submit(gpus=4, gpu_type="h200")  # after b2 in FIFO order, another type
    h2 = await env.submit(gpus=4, gpu_type="h200")
    loop = env.loop()
    summary = await loop.tick()
    assert summary.error is None
    assert await env.states(b1, b2, h1, h2) == ["PROGRESS", "QUEUED", "PROGRESS", "PROGRESS"]
    created = {j["id"]: j for j in env.sim.snapshot()["jobs"]}
    assert {created[b1]["gpus"], created[h1]["gpus"]} == {8, 4}
    assert env.sim.state.jobs[b1].gpu_type == "b200"
    assert env.sim.state.jobs[h1].gpu_type == "h200"
    assert env.sim.state.usage("b200") == 8 and env.sim.state.usage("h200") == 8
    reasons = {
        r[0]: msgspec.json.decode(r[1])
        for r in await env.pool.fetch(
            "SELECT stream_id, data->'reason' FROM events WHERE type = 'job.admission_started'"
        )
    }
    assert (reasons[b1]["gpu_type"], reasons[b1]["quota"], reasons[b1]["available"]) == (
        "b200",
        8,
        8,
    )
    assert (reasons[h1]["gpu_type"], reasons[h1]["quota"]) == ("h200", 8)
    assert loop.last_headroom == {"b200": 8, "h200": 8}  # read before this pass admitted


async def test_capacity_reports_each_type(env: Env) -> None:
    env.sim.state.patch_quota("training-h100-count", {"value": 16, "maxValue": 16}, True)
    await env.submit(gpus=2, gpu_type="h100")
    await env.loop().tick()
    async with env.pool.acquire() as conn:
        capacity = await CapacityReader(env.client, env.settings).read(conn)
    assert capacity.source == "fireworks-quotas"
    assert {t: (p.quota, p.in_use, p.available) for t, p in capacity.pools.items()} == {
        "h100": (16, 2, 14),
        "h200": (8, 0, 8),
    }
    assert (capacity.quota, capacity.in_use, capacity.available) == (24, 2, 22)


async def test_the_simulator_refuses_a_type_it_has_no_quota_for(env: Env) -> None:
    job = await env.submit(gpus=1, gpu_type="b200")  # no training-b200-count on the account
    loop = env.loop()
    await loop.tick()
    assert await env.states(job) == ["QUEUED"]  # no headroom of that type: never tried
    assert env.sim.state.create_requests.get(job) is None
