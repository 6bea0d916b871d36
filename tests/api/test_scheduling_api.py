"""Submit-time scheduling fields through the API: `gpu_type` (validated, stored, shown),
`priority` (a member may only lower it, up to the maximum an admin gave them), and queue
placement that never waits on Fireworks."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from events.domain.directory import USER, SetUserMaxPriority
from service.api.runtime import runtime_of
from service.commands import run_command
from tests.api.conftest import Users, bearer, sft
from tests.api.test_jobs import assert_error

Client = AsyncTestClient[Litestar]


async def test_gpu_type_is_validated_stored_and_shown(app_client: Client, users: Users) -> None:
    alice = bearer(users.alice)
    default = await app_client.post("/jobs", json=sft(), headers=alice)
    assert default.status_code == 201 and default.json()["gpu_type"] == "h200"
    b200 = await app_client.post("/jobs", json=sft(gpu_type="b200"), headers=alice)
    assert b200.status_code == 201 and b200.json()["gpu_type"] == "b200"
    got = await app_client.get(f"/jobs/{b200.json()['id']}", headers=alice)
    assert got.json()["gpu_type"] == "b200"
    listed = (await app_client.get("/jobs", headers=alice)).json()
    assert {j["gpu_type"] for j in listed} == {"h200", "b200"}
    bad = await app_client.post("/jobs", json=sft(gpu_type="a100"), headers=alice)
    assert_error(bad, 400, "VALIDATION_ERROR")
    assert "h200" in bad.text and "b200" in bad.text


async def test_priority_a_member_may_only_lower_unless_raised(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    alice = bearer(users.alice)
    low = await app_client.post("/jobs", json=sft(priority=10), headers=alice)
    assert low.status_code == 201 and low.json()["priority"] == 10
    plain = await app_client.post("/jobs", json=sft(), headers=alice)
    assert plain.json()["priority"] == 50
    high = await app_client.post("/jobs", json=sft(priority=60), headers=alice)
    assert_error(high, 403, "FORBIDDEN")
    assert "50" in high.json()["error"]["message"]
    await run_command(
        pool, USER, "alice@example.com", SetUserMaxPriority(at=_now(), max_priority=70), {}
    )
    raised = await app_client.post("/jobs", json=sft(priority=70), headers=alice)
    assert raised.status_code == 201 and raised.json()["priority"] == 70
    assert_error(
        await app_client.post("/jobs", json=sft(priority=71), headers=alice), 403, "FORBIDDEN"
    )
    admin = await app_client.post("/jobs", json=sft(priority=100), headers=bearer(users.admin))
    assert admin.status_code == 201 and admin.json()["priority"] == 100
    for bad in (101, -1, "high", 2.5):
        r = await app_client.post("/jobs", json=sft(priority=bad), headers=alice)
        assert_error(r, 400, "VALIDATION_ERROR")
    # the queue's order puts the admin's priority-100 job first
    queue = (await app_client.get("/queue", headers=bearer(users.admin))).json()
    assert queue[0]["id"] == admin.json()["id"] and queue[0]["queue_position"] == 1


async def test_post_jobs_answers_quickly_while_the_quota_endpoint_hangs(
    app: Litestar, app_client: Client, users: Users
) -> None:
    runtime = runtime_of(app.state)
    assert runtime.simulator is not None
    runtime.simulator.sim.faults.update({"quota_latency_ms": 60_000})  # hangs for a minute
    runtime.capacity.invalidate()
    runtime.plan_snapshot = None
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))
        times.append(time.perf_counter() - t0)
        assert r.status_code == 201, r.text
        assert r.json()["queue_position"] is not None and r.json()["pending_reason"]
    assert max(times) < 1.0, times  # a Fireworks read would have waited a minute
    queue = await app_client.get("/queue", headers=bearer(users.alice))
    assert queue.status_code == 200 and len(queue.json()) == 3


def _now() -> datetime:
    return datetime.now(UTC)


async def test_admin_sets_caps_per_class_shares_and_max_priority(
    app_client: Client, users: Users
) -> None:
    admin = bearer(users.admin)
    base = f"/admin/users/{users.alice_id}"
    small = await app_client.put(f"{base}/cap", json={"cap": 2}, headers=admin)
    assert small.status_code == 200 and small.json()["cap"] == 2
    big = await app_client.put(f"{base}/cap", json={"cap": 0, "class": "big"}, headers=admin)
    assert (big.json()["cap"], big.json()["cap_big"]) == (2, 0)
    none = await app_client.put(f"{base}/cap", json={"cap": "none"}, headers=admin)
    assert none.json()["no_cap"] == ["small"] and none.json()["cap"] is None
    back = await app_client.put(f"{base}/cap", json={"cap": None}, headers=admin)
    assert back.json()["no_cap"] == [] and back.json()["cap"] is None
    share = await app_client.put(f"{base}/share", json={"share": 3}, headers=admin)
    assert share.status_code == 200 and share.json()["share"] == 3
    top = await app_client.put(f"{base}/max-priority", json={"max_priority": 90}, headers=admin)
    assert top.status_code == 200 and top.json()["max_priority"] == 90
    for path, body in (
        ("cap", {"cap": -1}),
        ("cap", {"cap": 2, "class": "huge"}),
        ("cap", {"cap": "lots"}),
        ("cap", {"cap": 1.5}),
        ("share", {"share": 0}),
        ("share", {"share": "x"}),
        ("max-priority", {"max_priority": 101}),
    ):
        r = await app_client.put(f"{base}/{path}", json=body, headers=admin)
        assert_error(r, 400, "VALIDATION_ERROR")
    member = await app_client.put(f"{base}/share", json={"share": 9}, headers=bearer(users.bob))
    assert_error(member, 403, "FORBIDDEN")


async def test_the_policy_in_force_is_shown(app_client: Client, users: Users) -> None:
    admin = bearer(users.admin)
    view = (await app_client.get("/admin/scheduler", headers=admin)).json()
    assert view["policy"] == "strict-fifo"
    assert view["policy_settings"]["big_job_gpus"] == 0
    queue = await app_client.get("/queue", headers=bearer(users.alice))
    assert queue.headers["x-ftq-policy"] == "strict-fifo"
    metrics = (await app_client.get("/metrics")).text
    assert 'ftq_admission_policy{policy="strict-fifo"} 1.0' in metrics
    assert 'ftq_admission_policy{policy="fair-share"} 0.0' in metrics
