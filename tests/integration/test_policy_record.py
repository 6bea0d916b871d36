"""The policy in force is recorded in the log when a leader starts with it or it changes
(scheduler.policy_in_force), and `ftq audit` reads it from there."""

from __future__ import annotations

import asyncio

import msgspec

from tests.integration.admission_env import Env, env

__all__ = ["env"]


async def _records(env: Env) -> list[dict[str, object]]:
    rows = await env.pool.fetch(
        "SELECT data FROM events WHERE type = 'scheduler.policy_in_force' ORDER BY position"
    )
    return [msgspec.json.decode(r[0]) for r in rows]


async def _lead_once(env: Env, **settings: object) -> None:
    loop = env.loop(**settings)
    await loop.start()
    try:
        async with asyncio.timeout(10):
            while not loop.status().leader or not loop._recorded_policy:
                await asyncio.sleep(0.02)
    finally:
        await loop.stop()


async def test_a_leader_records_its_policy_once_and_again_when_it_changes(env: Env) -> None:
    await _lead_once(env)
    first = await _records(env)
    assert [r["policy"] for r in first] == ["strict-fifo"]
    assert first[0]["settings"] == {
        "big_job_gpus": 0,
        "user_cap_small": 1,
        "user_cap_big": 1,
        "big_job_reserve": 0,
        "fair_share_half_life_hours": 168.0,
        "max_wait_hours": 72.0,
        "priority_aging_hours": 6.0,
        "default_runtime_minutes": 120.0,
    }
    await _lead_once(env)  # same policy, same settings: nothing more recorded
    assert len(await _records(env)) == 1
    await _lead_once(env, policy="reserve", big_job_gpus=8, big_job_reserve=4)
    records = await _records(env)
    assert [r["policy"] for r in records] == ["strict-fifo", "reserve"]
    assert records[1]["settings"]["big_job_reserve"] == 4  # type: ignore[index]
    row = await env.pool.fetchrow("SELECT policy, policy_settings FROM scheduler_state")
    assert row is not None and row[0] == "reserve"
