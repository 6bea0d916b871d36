"""Runtime estimates and fair-share usage from the log, kept current incrementally: each
catch-up reads only the events appended since the last one; successes feed the estimator,
every finished run feeds the usage, a quota refusal undoes a start."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from events.domain.scheduling import Job
from service.admission.history import SchedulingHistory
from tests.integration.admission_env import Env, env

__all__ = ["env"]


async def test_estimates_and_usage_follow_the_log_one_catch_up_at_a_time(env: Env) -> None:
    user = "7b0c6f0e-0000-4000-8000-000000000001"
    first = await env.submit(gpus=2, user=user)
    loop = env.loop()
    await loop.tick()  # admitted: PROGRESS
    history = SchedulingHistory(default_runtime_minutes=120, half_life_hours=168)
    async with env.pool.acquire() as conn:
        read = await _catch_up(history, conn, 3)  # submitted, admission started, admitted
        assert await history.catch_up(conn) == 0  # nothing new: nothing read
    probe = Job("probe", user, env.clock(), 2, kind="SFT")
    assert history.estimator.estimate(probe) == 120 * 60  # nothing finished yet: the default
    env.clock.now += timedelta(seconds=1000)
    env.sim.advance(1000)  # the job's 1000 s on the simulator are over
    await loop.tick(full_reconcile=True)
    async with env.pool.acquire() as conn:
        assert (await env.row(first))["state"] == "SUCCESS"
        new = await _catch_up(history, conn, 1)
        assert new < read + 10  # only the events since the last catch-up
    estimate = history.estimator.estimate(probe)
    assert 900 <= estimate <= 1100, estimate  # the observed runtime (admitted -> SUCCESS)
    usage = history.usage(env.clock(), [])
    assert usage[user] > 0  # GPU-seconds of the finished run, decayed
    other = Job("probe", "someone-else", env.clock(), 2, kind="SFT")
    assert history.estimator.estimate(other) == estimate  # all users' median as a fallback


async def _catch_up(history: SchedulingHistory, conn: Any, least: int) -> int:
    """Catch up until at least `least` events were read: the log's gap-free reader holds
    back events while an older transaction anywhere on the server is still open."""
    read = 0
    async with asyncio.timeout(30):
        while read < least:
            read += await history.catch_up(conn)
            if read < least:
                await asyncio.sleep(0.05)
    return read
