"""Every counter counts exactly what its name says: after a workload of admissions, quota
refusals, rejected payloads, successes, FAILs, cancels and a Fireworks outage, each counter
moved by the number of the matching events in the log (and Fireworks errors by the error
replies seen on the wire)."""

from __future__ import annotations

from collections import Counter

import aiohttp
from prometheus_client import REGISTRY

from service.cancellation import cancel_job
from service.capacity import CapacityReader
from service.fireworks import FireworksClient
from service.settings import Settings
from tests.integration.admission_env import ACCOUNT, KEY, META, Env, env, no_sleep

__all__ = ["env"]

SAMPLES = {
    ("ftq_admissions_total", "outcome", "admitted"): ["job.admitted"],
    ("ftq_admissions_total", "outcome", "returned"): ["job.returned_to_queue"],
    ("ftq_admissions_total", "outcome", "rejected"): ["job.rejected"],
    ("ftq_jobs_finished_total", "state", "SUCCESS"): ["job.succeeded"],
    ("ftq_jobs_finished_total", "state", "FAIL"): ["job.failed", "job.rejected"],
    ("ftq_jobs_finished_total", "state", "CANCELLED"): ["job.cancelled"],
    ("ftq_fireworks_errors_total", "kind", "quota"): ["job.returned_to_queue"],
    ("ftq_fireworks_errors_total", "kind", "rejected"): ["job.rejected"],
}
KINDS = ("quota", "rejected", "transient", "not_found", "already_exists", "unauthenticated")


def _samples() -> dict[tuple[str, str, str], float]:
    keys = set(SAMPLES) | {("ftq_fireworks_errors_total", "kind", kind) for kind in KINDS}
    return {key: REGISTRY.get_sample_value(key[0], {key[1]: key[2]}) or 0.0 for key in keys}


async def test_every_counter_equals_the_log_after_a_workload(env: Env) -> None:
    replies: Counter[int] = Counter()

    async def on_end(_: object, __: object, params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status >= 300:
            replies[params.response.status] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    before = _samples()
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        env.client = FireworksClient(
            session, env.client._base_url, KEY, ACCOUNT, max_attempts=1, sleep=no_sleep
        )
        # ftq believes in 16 GPUs, Fireworks has 8: the third job is refused for quota.
        settings = Settings(fireworks_account_id=ACCOUNT, fireworks_gpu_quota=16)
        loop = env.loop(capacity=CapacityReader(None, settings), fireworks_gpu_quota=16)
        bad = await env.submit("SFT", 1, payload={"dataset": "d"})
        a, b, c = await env.submit(gpus=4), await env.submit(gpus=2), await env.submit(gpus=4)
        queued = await env.submit(gpus=1)
        await loop.tick()
        assert await env.states(bad, a, b, c, queued) == [
            "FAIL", "PROGRESS", "PROGRESS", "QUEUED", "QUEUED",
        ]  # fmt: skip
        await cancel_job(env.pool, env.client, queued, "u@example.com", META, clock=env.clock)
        for _ in range(3):  # progress observations of running jobs are no admissions
            env.sim.advance(10)
            await loop.tick()
        env.sim.set_outcome(a, "JOB_STATE_COMPLETED")
        await loop.tick()  # a succeeds; c fits now
        assert await env.states(a, c) == ["SUCCESS", "PROGRESS"]
        env.sim.faults.update({"error_rate": 1.0})
        await loop.tick()  # an outage: transient errors only
        await loop.tick()
        env.sim.faults.reset()
        await cancel_job(env.pool, env.client, b, "u@example.com", META, clock=env.clock)
        env.sim.set_outcome(c, "JOB_STATE_FAILED", "out of memory")
        for _ in range(2):
            env.sim.advance(10)
            await loop.tick()
        assert await env.states(b, c) == ["CANCELLED", "FAIL"]

    after = _samples()
    moved = {key: after[key] - before[key] for key in after}
    logged = Counter(r[0] for r in await env.pool.fetch("SELECT type FROM events"))
    assert logged["job.fireworks_state_observed"] > 0
    for key, types in SAMPLES.items():
        assert moved[key] == sum(logged[t] for t in types), (key, moved[key], logged)
    transient = sum(n for status, n in replies.items() if status >= 500)
    assert transient > 0
    assert moved[("ftq_fireworks_errors_total", "kind", "transient")] == transient
    errors = sum(moved[("ftq_fireworks_errors_total", "kind", kind)] for kind in KINDS)
    assert errors == sum(replies.values()), replies
    assert logged["job.admitted"] == 3 and logged["job.returned_to_queue"] >= 1
