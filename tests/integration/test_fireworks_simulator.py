"""The real FireworksClient against the in-process simulator: one test per §9 item and more."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from service.fireworks import (
    COLLECTION,
    KINDS,
    AlreadyExists,
    FireworksClient,
    Kind,
    NotFound,
    QuotaExhausted,
    Rejected,
    Transient,
    Unauthenticated,
)
from service.fireworks.simulator import GPU_QUOTA, SimConfig, Simulator, run_simulator

ACCOUNT = "sim-acct"
KEY = "sim-secret-key"
PAYLOAD: dict[Kind, dict[str, Any]] = {
    "SFT": {"dataset": "accounts/a/datasets/d", "baseModel": "accounts/fireworks/models/m"},
    "DPO": {"dataset": "accounts/a/datasets/d", "trainingConfig": {"baseModel": "m"}},
    "RFT": {"dataset": "accounts/a/datasets/d", "evaluator": "accounts/a/evaluators/e"},
}


class Clock:
    """A clock that only moves when the simulator is told to advance."""

    def __call__(self) -> float:
        return 1_800_000_000.0


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@dataclass
class Env:
    sim: Simulator
    client: FireworksClient
    session: aiohttp.ClientSession
    base_url: str
    sleep: RecordingSleep

    async def raw(
        self, method: str, path: str, body: Any = None, *, key: str | None = KEY
    ) -> tuple[int, Any]:
        """A request without the client, to check bodies and status codes as sent."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = self.base_url + (
            path if path.startswith("/_sim") else f"/v1/accounts/{ACCOUNT}{path}"
        )
        async with self.session.request(method, url, json=body, headers=headers) as response:
            return response.status, await response.json()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    config = SimConfig(
        account_id=ACCOUNT, api_key=KEY, quota=16, job_seconds=100.0, cancel_seconds=5.0
    )
    sim = Simulator(config, clock=Clock())
    running = await run_simulator(sim=sim)
    sleep = RecordingSleep()
    try:
        async with aiohttp.ClientSession() as session:
            client = FireworksClient(
                session, running.base_url, KEY, ACCOUNT, max_attempts=3, sleep=sleep
            )
            yield Env(sim, client, session, running.base_url, sleep)
    finally:
        await running.stop()


async def usage(env: Env) -> float:
    quota = await env.client.get_quota(GPU_QUOTA)
    assert quota.usage is not None
    return quota.usage


# 1. bearer auth


async def test_wrong_or_missing_key_is_401_in_gateway_shape(env: Env) -> None:
    for key in ("wrong", None):
        status, body = await env.raw("GET", "/supervisedFineTuningJobs", key=key)
        assert status == 401
        assert body["code"] == 16 and body["details"] == []
    async with aiohttp.ClientSession() as session:
        bad = FireworksClient(session, env.base_url, "nope", ACCOUNT, sleep=env.sleep)
        with pytest.raises(Unauthenticated):
            await bad.list_quotas()
    status, _ = await env.raw("GET", "/_sim/state", key=None)
    assert status == 200


# 2. all routes, 200s, DELETE and cancel return {}


@pytest.mark.parametrize("kind", KINDS)
async def test_every_route_of_a_kind(env: Env, kind: Kind) -> None:
    col = f"/{COLLECTION[kind]}"
    created = await env.client.create_job(kind, "job-a", PAYLOAD[kind], gpu_count=2)
    assert created.job_id == "job-a"
    assert (await env.client.get_job(kind, "job-a")).name == created.name
    assert [j.job_id for j in await env.client.list_jobs(kind)] == ["job-a"]
    assert await env.raw("POST", f"{col}/job-a:cancel", {}) == (200, {})
    env.sim.advance(10)
    assert (await env.client.get_job(kind, "job-a")).state == "JOB_STATE_CANCELLED"
    resumed = await env.client.resume_job(kind, "job-a")
    assert resumed.state == "JOB_STATE_PENDING"
    assert await env.raw("DELETE", f"{col}/job-a") == (200, {})
    with pytest.raises(NotFound):
        await env.client.get_job(kind, "job-a")
    other = next(k for k in KINDS if k != kind)
    await env.client.create_job(kind, "job-b", PAYLOAD[kind])
    with pytest.raises(NotFound):
        await env.client.get_job(other, "job-b")


async def test_dpo_metrics_endpoint(env: Env) -> None:
    await env.client.create_job("DPO", "d1", PAYLOAD["DPO"])
    status, body = await env.raw("GET", "/dpoJobs/d1:getMetricsFileEndpoint")
    assert status == 200 and "signedUrl" in body


# 3. create validation and filled-in fields


@pytest.mark.parametrize("job_id", ["Upper", "-lead", "trail-", "a" * 64, "under_score", "a.b"])
async def test_invalid_ids_are_400(env: Env, job_id: str) -> None:
    with pytest.raises(Rejected) as info:
        await env.client.create_job("SFT", job_id, PAYLOAD["SFT"])
    assert info.value.status == 400
    assert "invalid job ID" in info.value.message


@pytest.mark.parametrize("job_id", ["a", "a" * 63, "0-9", str(uuid.uuid4())])
async def test_valid_ids_are_accepted(env: Env, job_id: str) -> None:
    assert (await env.client.create_job("SFT", job_id, PAYLOAD["SFT"])).job_id == job_id


@pytest.mark.parametrize(
    ("kind", "payload", "needle"),
    [
        ("SFT", {"baseModel": "m"}, "dataset"),
        ("RFT", {"dataset": "d"}, "evaluator"),
        ("SFT", {"dataset": "d"}, "exactly one"),
        ("SFT", {"dataset": "d", "baseModel": "m", "warmStartFrom": "w"}, "exactly one"),
        ("DPO", {"dataset": "d", "baseModel": "m"}, "trainingConfig"),
    ],
)
async def test_create_validation(
    env: Env, kind: Kind, payload: dict[str, Any], needle: str
) -> None:
    status, body = await env.raw("POST", f"/{COLLECTION[kind]}?{kind}=x", payload)
    assert (status, body["code"]) == (400, 3)
    assert needle in body["message"]
    assert env.sim.snapshot()["jobs"] == []


async def test_create_fills_read_only_fields_and_generates_uuid(env: Env) -> None:
    job = await env.client.create_job("SFT", "filled", PAYLOAD["SFT"])
    assert job.name == f"accounts/{ACCOUNT}/supervisedFineTuningJobs/filled"
    assert job.state == "JOB_STATE_CREATING"
    assert job.status is not None and job.status.code == "OK"
    assert job.create_time is not None and job.create_time.endswith("Z")
    status, body = await env.raw("POST", "/supervisedFineTuningJobs", PAYLOAD["SFT"])
    assert status == 200
    generated = body["name"].rsplit("/", 1)[-1]
    assert str(uuid.UUID(generated)) == generated
    assert body["outputModel"] == f"accounts/{ACCOUNT}/models/{generated}"
    dpo = await env.client.create_job("DPO", "warm", {"dataset": "d", "warmStartFrom": "w"})
    assert dpo.job_id == "warm"
    _, body = await env.raw("GET", "/dpoJobs/warm")
    assert body["trainingConfig"]["outputModel"] == f"accounts/{ACCOUNT}/models/warm"


# 4. duplicate ids, including deleted ones


async def test_duplicate_and_deleted_ids_are_409(env: Env) -> None:
    await env.client.create_job("SFT", "dup", PAYLOAD["SFT"])
    status, body = await env.raw(
        "POST", "/supervisedFineTuningJobs?supervisedFineTuningJobId=dup", PAYLOAD["SFT"]
    )
    assert status == 409
    assert body["code"] == 6 and body["details"] == [] and "dup" in body["message"]
    await env.client.delete_job("SFT", "dup")
    with pytest.raises(AlreadyExists):
        await env.client.create_job("SFT", "dup", PAYLOAD["SFT"])
    assert env.sim.snapshot()["create_requests"]["dup"] == 3
    assert env.sim.snapshot()["jobs_created"]["dup"] == 1
    assert env.sleep.delays == []


# 5. clock-driven progress and injectable outcomes


async def test_sft_progresses_through_every_phase(env: Env) -> None:
    await env.client.create_job("SFT", "p", PAYLOAD["SFT"])
    seen: list[tuple[str | None, float | None, str | None]] = []
    for _ in range(11):
        job = await env.client.get_job("SFT", "p")
        seen.append((job.state, job.percent, job.update_time))
        assert job.completed_time is None or job.state == "JOB_STATE_COMPLETED"
        env.sim.advance(10)
    states = [s for s, _, _ in seen]
    assert states[:2] == ["JOB_STATE_CREATING", "JOB_STATE_PENDING"]
    assert states[2:9] == ["JOB_STATE_RUNNING"] * 7
    assert states[9:] == ["JOB_STATE_WRITING_RESULTS", "JOB_STATE_COMPLETED"]
    assert [p for _, p, _ in seen] == [10.0 * i for i in range(11)]
    assert len({u for _, _, u in seen[:10]}) == 10  # updateTime moves while running
    final = await env.client.get_job("SFT", "p")
    assert final.completed_time is not None
    env.sim.advance(50)
    assert (await env.client.get_job("SFT", "p")).completed_time == final.completed_time


async def test_dpo_has_no_progress_or_update_time(env: Env) -> None:
    await env.client.create_job("DPO", "d", PAYLOAD["DPO"])
    env.sim.advance(50)
    job = await env.client.get_job("DPO", "d")
    assert job.state == "JOB_STATE_RUNNING"
    assert job.job_progress is None and job.update_time is None
    rft = await env.client.create_job("RFT", "r", PAYLOAD["RFT"])
    assert rft.percent == 0 and rft.update_time is None


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        ("JOB_STATE_FAILED", True),
        ("JOB_STATE_EXPIRED", True),
        ("JOB_STATE_EARLY_STOPPED", True),
        ("JOB_STATE_PAUSED", False),
        ("JOB_STATE_SOMETHING_NEW", False),
    ],
)
async def test_injected_outcomes(env: Env, state: str, terminal: bool) -> None:
    await env.client.create_job("SFT", "o", PAYLOAD["SFT"], gpu_count=4)
    env.sim.advance(30)
    env.sim.set_outcome("o", state, message="injected")
    env.sim.advance(500)
    job = await env.client.get_job("SFT", "o")
    assert job.state == state
    assert job.status_message == "injected"
    assert (job.completed_time is not None) is terminal
    assert await usage(env) == (0.0 if terminal else 4.0)
    if state == "JOB_STATE_FAILED":
        assert job.status is not None and job.status.code == "INTERNAL"


# 6. quota accounting


async def test_quota_usage_follows_jobs(env: Env) -> None:
    quota = await env.client.get_quota(GPU_QUOTA)
    assert (quota.value, quota.max_value, quota.usage) == ("16", "16", 0.0)
    _status, body = await env.raw("GET", f"/quotas/{GPU_QUOTA}")
    assert isinstance(body["usage"], float) and isinstance(body["value"], str)
    before = quota.update_time
    env.sim.advance(1)
    await env.client.create_job("SFT", "a", PAYLOAD["SFT"], gpu_count=8)
    await env.client.create_job("RFT", "b", PAYLOAD["RFT"])  # default 4 GPUs
    after = await env.client.get_quota(GPU_QUOTA)
    assert after.usage == 12.0 and after.update_time != before
    env.sim.advance(100)  # both complete
    assert await usage(env) == 0.0
    assert env.sim.max_usage_seen == 12.0


# 7. quota exhaustion


async def test_create_over_quota_is_429_and_creates_nothing(env: Env) -> None:
    await env.client.create_job("SFT", "big", PAYLOAD["SFT"], gpu_count=12)
    with pytest.raises(QuotaExhausted) as info:
        await env.client.create_job("DPO", "over", PAYLOAD["DPO"], gpu_count=8)
    assert info.value.status == 429
    assert info.value.message == f"{GPU_QUOTA} for account {ACCOUNT}, in use: 12, quota: 16"
    assert (info.value.in_use, info.value.quota) == (12, 16)
    with pytest.raises(NotFound):
        await env.client.get_job("DPO", "over")
    assert env.sleep.delays == []
    assert await usage(env) == 12.0


# 8. delete


async def test_delete_releases_quota_hides_job_keeps_id(env: Env) -> None:
    await env.client.create_job("RFT", "gone", PAYLOAD["RFT"], gpu_count=16)
    assert await usage(env) == 16.0
    await env.client.delete_job("RFT", "gone")
    assert await usage(env) == 0.0
    with pytest.raises(NotFound):
        await env.client.get_job("RFT", "gone")
    assert await env.client.list_jobs("RFT") == []
    with pytest.raises(AlreadyExists):
        await env.client.create_job("RFT", "gone", PAYLOAD["RFT"])


# 9. cancel


async def test_cancel_goes_through_cancelling_to_cancelled(env: Env) -> None:
    await env.client.create_job("RFT", "c", PAYLOAD["RFT"])
    env.sim.advance(20)
    await env.client.cancel_job("RFT", "c")
    job = await env.client.get_job("RFT", "c")
    assert job.state == "JOB_STATE_CANCELLING" and job.completed_time is None
    env.sim.advance(5)
    job = await env.client.get_job("RFT", "c")
    assert job.state == "JOB_STATE_CANCELLED" and job.completed_time is not None
    assert await usage(env) == 0.0
    status, body = await env.raw("POST", "/reinforcementFineTuningJobs/c:cancel", {})
    assert (status, body["code"]) == (400, 9)
    with pytest.raises(Rejected):
        await env.client.cancel_job("RFT", "c")
    assert (await env.client.get_job("RFT", "c")).state == "JOB_STATE_CANCELLED"


@pytest.mark.parametrize("kind", ["SFT", "DPO"])
async def test_cancel_without_sft_dpo_verb_falls_back_to_delete(env: Env, kind: Kind) -> None:
    env.sim.configure({"serve_sft_dpo_cancel": False})
    await env.client.create_job(kind, "c", PAYLOAD[kind])
    status, _ = await env.raw("POST", f"/{COLLECTION[kind]}/c:cancel", {})
    assert status == 404
    await env.client.cancel_job(kind, "c")
    with pytest.raises(NotFound):
        await env.client.get_job(kind, "c")
    assert await usage(env) == 0.0
    with pytest.raises(NotFound):
        await env.client.cancel_job(kind, "never-existed")


# 10. resume


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_PAUSED"])
async def test_resume_restarts_resumable_jobs(env: Env, state: str) -> None:
    await env.client.create_job("SFT", "r", PAYLOAD["SFT"])
    env.sim.advance(30)
    env.sim.set_outcome("r", state)
    resumed = await env.client.resume_job("SFT", "r")
    assert resumed.state == "JOB_STATE_PENDING"
    assert await usage(env) == 4.0
    env.sim.advance(100)
    assert (await env.client.get_job("SFT", "r")).state == "JOB_STATE_COMPLETED"


async def test_resume_of_running_or_completed_is_400(env: Env) -> None:
    await env.client.create_job("SFT", "r", PAYLOAD["SFT"])
    env.sim.advance(30)
    for _ in range(2):
        status, body = await env.raw("POST", "/supervisedFineTuningJobs/r:resume", {})
        assert (status, body["code"]) == (400, 9)
        env.sim.advance(100)


# 11. pagination and filter


async def test_pagination_defaults_cap_token_and_filter(env: Env) -> None:
    env.sim.state.quotas[GPU_QUOTA].value = 10_000
    for i in range(205):
        env.sim.state.create("SFT", f"job-{i:03d}", dict(PAYLOAD["SFT"]), gpus=0)
    status, first = await env.raw("GET", "/supervisedFineTuningJobs")
    assert status == 200 and len(first["supervisedFineTuningJobs"]) == 50
    assert first["totalSize"] == 205 and first["nextPageToken"]
    _, capped = await env.raw("GET", "/supervisedFineTuningJobs?pageSize=500")
    assert len(capped["supervisedFineTuningJobs"]) == 200
    names = [j.job_id for j in await env.client.list_jobs("SFT")]
    assert names == [f"job-{i:03d}" for i in range(205)]
    _, page = await env.raw("GET", "/supervisedFineTuningJobs?pageSize=3")
    _, page2 = await env.raw(
        "GET", f"/supervisedFineTuningJobs?pageSize=3&pageToken={page['nextPageToken']}"
    )
    assert [j["name"][-3:] for j in page2["supervisedFineTuningJobs"]] == ["003", "004", "005"]
    status, body = await env.raw("GET", "/supervisedFineTuningJobs?pageToken=garbage")
    assert (status, body["code"]) == (400, 3)
    env.sim.set_outcome("job-007", "JOB_STATE_RUNNING")
    running = await env.client.list_jobs("SFT", filter='state="JOB_STATE_RUNNING"')
    assert [j.job_id for j in running] == ["job-007"]
    rest = await env.client.list_jobs("SFT", filter='state!="JOB_STATE_RUNNING"')
    assert len(rest) == 204
    status, _ = await env.raw("GET", "/supervisedFineTuningJobs?filter=displayName%3D%22x%22")
    assert status == 400


# 12. quotas


async def test_quotas_list_get_patch(env: Env) -> None:
    ids = [q.quota_id for q in await env.client.list_quotas()]
    assert GPU_QUOTA in ids and len(ids) == 3
    with pytest.raises(NotFound):
        await env.client.get_quota("training-b300-count")
    status, body = await env.raw("PATCH", f"/quotas/{GPU_QUOTA}", {"value": "4"})
    assert status == 200 and body["value"] == "4" and body["maxValue"] == "16"
    with pytest.raises(QuotaExhausted):
        await env.client.create_job("SFT", "x", PAYLOAD["SFT"], gpu_count=8)
    status, _ = await env.raw("PATCH", f"/quotas/{GPU_QUOTA}", {"value": "17"})
    assert status == 400
    status, _ = await env.raw("PATCH", "/quotas/new-q", {"value": "1", "maxValue": "2"})
    assert status == 404
    status, _ = await env.raw("PATCH", "/quotas/new-q?allowMissing=true", {"value": "1"})
    assert status == 200


# 13. fault injection


async def test_5xx_faults_are_retried_then_surface(env: Env) -> None:
    env.sim.faults.update({"error_rate": 1.0})
    with pytest.raises(Transient) as info:
        await env.client.list_quotas()
    assert info.value.status == 503 and len(env.sleep.delays) == 2
    env.sim.faults.update({"error_rate": 0.3})
    for _ in range(10):
        await env.client.list_jobs("SFT")


async def test_429_with_retry_after_is_honoured(env: Env) -> None:
    env.sim.faults.update({"rate_429": 1.0, "retry_after": 7})
    with pytest.raises(Transient) as info:
        await env.client.get_quota(GPU_QUOTA)
    assert info.value.status == 429 and info.value.retry_after == 7
    assert env.sleep.delays == [7.0, 7.0]


@pytest.mark.parametrize("mode", ["503", "abort"])
async def test_lost_create_response_then_get_finds_the_job(env: Env, mode: str) -> None:
    env.sim.faults.update({"lose_next_creates": 1, "lose_mode": mode})
    with pytest.raises(AlreadyExists):  # the retry hits our own earlier create
        await env.client.create_job("SFT", "lost", PAYLOAD["SFT"])
    assert len(env.sleep.delays) == 1
    assert (await env.client.get_job("SFT", "lost")).job_id == "lost"
    state = env.sim.snapshot()
    assert state["jobs_created"] == {"lost": 1} and state["create_requests"] == {"lost": 2}


async def test_latency_fault_delays_responses(env: Env) -> None:
    env.sim.faults.update({"latency_ms": 150})
    started = time.monotonic()
    await env.client.list_quotas()
    assert time.monotonic() - started >= 0.15


async def test_control_routes_drive_a_separate_process_scenario(env: Env) -> None:
    status, _body = await env.raw("POST", "/_sim/faults", {"bogus": 1})
    assert status == 400
    _, ext = await env.raw("POST", "/_sim/external-jobs", {"gpus": 12})
    assert await usage(env) == 12.0
    assert ext["id"] in [j.job_id for j in await env.client.list_jobs("SFT")]
    status, _ = await env.raw("POST", "/_sim/external-jobs", {"gpus": 8})
    assert status == 429
    await env.client.create_job("RFT", "mine", PAYLOAD["RFT"])
    assert await env.raw("DELETE", f"/_sim/jobs/{ext['id']}") == (200, {})
    with pytest.raises(NotFound):
        await env.client.get_job("SFT", ext["id"])
    status, _ = await env.raw("POST", "/_sim/jobs/mine/outcome", {"state": "PAUSED"})
    assert status == 200
    assert (await env.client.get_job("RFT", "mine")).state == "JOB_STATE_PAUSED"
    await env.raw("POST", "/_sim/jobs/mine/outcome", {"state": "FAILED", "message": "oom"})
    failed = await env.client.get_job("RFT", "mine")
    assert (failed.state, failed.status_message) == ("JOB_STATE_FAILED", "oom")
    await env.raw("POST", "/_sim/clock/advance", {"seconds": 3})
    _, state = await env.raw("GET", "/_sim/state")
    assert state["max_usage_seen"] == 16.0 and state["usage"] == 0.0
    assert state["create_requests"]["mine"] == 1
    jobs = {j["id"]: j for j in state["jobs"]}
    assert jobs["mine"]["state"] == "JOB_STATE_FAILED" and jobs["mine"]["gpus"] == 4
    assert jobs[ext["id"]]["deleted"] and jobs[ext["id"]]["external"]
    status, _ = await env.raw("POST", "/_sim/faults", {"error_rate": 1.0})
    assert status == 200 and env.sim.faults.error_rate == 1.0
    await env.raw("DELETE", "/_sim/faults")
    assert env.sim.faults.error_rate == 0.0
