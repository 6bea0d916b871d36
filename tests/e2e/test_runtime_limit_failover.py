"""A runtime-limit cancel survives the leader dying between its decision and the Fireworks
call: real `ftq serve` replicas in front of `ftq fireworks-sim`, the leader made to exit at
the fault step `runtime_cancel_decided` (FTQ_FAULT_STEP), the other replica finishing the
cancel. Fireworks gets exactly one cancel; the job ends CANCELLED with the limit's error."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.e2e.conftest import SFT_JOB, Env
from tests.e2e.reliability import Cluster, make_cluster

LIMIT_HOURS = "0.001"  # 3.6 s: the default limit, small enough to wait for
ERROR = "max runtime exceeded (0.06 min)"


async def _job(cluster: Cluster, i: int, job_id: str) -> dict[str, Any]:
    status, body = await cluster.call("GET", f"{cluster.url(i)}/jobs/{job_id}", cluster.admin)
    assert status == 200, body
    return dict(body)


async def _until(cluster: Cluster, i: int, job_id: str, state: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await _job(cluster, i, job_id)
        if job["state"] == state:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"{job_id} not {state} after {timeout}s: {job}")


async def test_the_leader_dies_after_deciding_a_runtime_cancel(env: Env, db_url: str) -> None:
    cluster = await make_cluster(env, db_url, replicas=2, cap=8, job_seconds=600, start=False)
    key = next(iter(cluster.users.values()))
    limit = {"FTQ_MAX_RUNTIME_HOURS": LIMIT_HOURS}
    try:
        faulty = await cluster.start_replica(
            0, FTQ_FAULT_STEP="runtime_cancel_decided", FTQ_FAULT_ACTION="exit", **limit
        )
        await cluster.wait_healthy(0)
        assert await cluster.wait_leader() == 0
        status, body = await cluster.call("POST", f"{cluster.url(0)}/jobs", key, SFT_JOB)
        assert status == 201, body
        job_id = body["id"]
        await _until(cluster, 0, job_id, "PROGRESS")
        # the limit passes, the leader records its decision and dies before telling Fireworks
        assert await asyncio.wait_for(faulty.proc.wait(), 30) == 137, faulty.err
        state = await cluster.sim_call("GET", "/_sim/state")
        assert state["cancel_requests"].get(job_id) is None
        await cluster.start_replica(1, **limit)
        await cluster.wait_healthy(1)
        assert await cluster.wait_leader() == 1
        job = await _until(cluster, 1, job_id, "CANCELLED")
        assert job["error"] == ERROR
        await asyncio.sleep(2.5)  # a few more passes of the new leader: nothing more
        state = await cluster.sim_call("GET", "/_sim/state")
        assert state["cancel_requests"] == {job_id: 1}
        assert state["jobs_created"] == {job_id: 1}
        status, events = await cluster.call(
            "GET", f"{cluster.url(1)}/jobs/{job_id}/events", cluster.admin
        )
        assert status == 200
        types = [e["type"] for e in events]
        assert types.count("job.cancel_requested") == 1 and types.count("job.cancelled") == 1
        (asked,) = [e["data"] for e in events if e["type"] == "job.cancel_requested"]
        assert (asked["by"], asked["reason"], asked["limit_source"]) == (
            "ftq",
            ERROR,
            "FTQ_MAX_RUNTIME_HOURS",
        )
    finally:
        for i in cluster.alive():
            await cluster.kill(i)
        if cluster.session is not None:
            await cluster.session.close()
