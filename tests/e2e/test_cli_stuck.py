"""Stuck jobs with the real processes: `ftq serve` with a small FTQ_STUCK_MINUTES in front of
`ftq fireworks-sim`, a job parked in PENDING there (`/_sim/jobs/{id}/park`): flagged once
(`ftq show`, `ftq jobs`, /metrics), never cancelled, unflagged when it moves."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.e2e.conftest import (
    SFT_JOB,
    Env,
    free_port,
    healthy,
    http,
    issue,
    wait_for,
    with_simulator,
)


async def _show(alice: Env, job_id: str) -> dict[str, Any]:
    shown = await alice.run("show", job_id, "--json")
    assert shown.code == 0, shown.err
    return dict(json.loads(shown.out))


async def _until(alice: Env, job_id: str, ok: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = await _show(alice, job_id)
        if ok(job):
            return job
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what}: not after {timeout}s: {job}")


def _stuck_in_pending(job: dict[str, Any]) -> bool:
    return job.get("stuck") is True and job["fireworks_state"] == "JOB_STATE_PENDING"


async def _metric(url: str) -> float:
    status, body = await http("GET", f"{url}/metrics")
    assert status == 200
    text = body if isinstance(body, str) else body.decode()
    (line,) = [x for x in text.splitlines() if x.startswith("ftq_stuck_jobs ")]
    return float(line.split()[1])


async def test_a_job_parked_in_pending_is_flagged_and_unflagged(env: Env, db_url: str) -> None:
    _sim, served, sim_url = await with_simulator(
        env, db_url, job_seconds=600, FTQ_STUCK_MINUTES="0.05"
    )  # 3 s
    alice_key = await issue(served, "alice@e2e.test", "member")
    port = free_port()
    server = await served.start("serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    await wait_for(lambda: healthy(url), "ftq serve", server)
    alice = served.with_(FTQ_URL=url, SFTQ_API_KEY=alice_key)
    body = env.home / "job.json"
    body.write_text(json.dumps(SFT_JOB))
    submitted = await alice.run("submit", str(body))
    assert submitted.code == 0, submitted.err
    job_id = submitted.out.split()[0]
    await _until(alice, job_id, lambda j: j["state"] == "PROGRESS", "admitted")
    park = f"{sim_url}/_sim/jobs/{job_id}/park"
    status, _ = await http("POST", park, body={"state": "PENDING"})
    assert status == 200

    # (under load the job may first be flagged in CREATING, which lasts 30 s here: a real
    # episode of its own, cleared by the move to PENDING)
    job = await _until(alice, job_id, _stuck_in_pending, "flagged stuck in PENDING")
    assert job["state"] == "PROGRESS" and job["fireworks_state"] == "JOB_STATE_PENDING"
    assert job["stuck_reason"].startswith("PENDING on Fireworks for 0 min (over 0.05)")
    listed = await alice.run("jobs")
    assert "PROGRESS (stuck)" in listed.out, listed.out
    assert await _metric(url) == 1
    await asyncio.sleep(2)  # more passes: still one episode, still not cancelled
    status, events = await http("GET", f"{url}/jobs/{job_id}/events", alice_key)
    assert status == 200
    flags = [e["data"] for e in events if e["type"] == "job.stuck_detected"]
    assert [f["fireworks_state"] for f in flags].count("JOB_STATE_PENDING") == 1, flags
    assert (await _show(alice, job_id))["state"] == "PROGRESS"

    assert (await http("DELETE", park))[0] == 200
    assert (await http("POST", f"{sim_url}/_sim/clock/advance", body={"seconds": 150}))[0] == 200
    job = await _until(alice, job_id, lambda j: "stuck" not in j, "unflagged")
    assert job["fireworks_state"] == "JOB_STATE_RUNNING"
    assert await _metric(url) == 0
    status, state = await http("GET", f"{sim_url}/_sim/state")
    assert state["cancel_requests"] == {}
