"""Runtime limits and stuck jobs through the HTTP API: the app, its simulator (steered over
`/_sim`), and an admission loop with an injected clock."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from projections.rebuild import verify
from tests.api.conftest import Users, bearer, sft
from tests.api.conftest import count_events as count_all_events
from tests.api.operations_env import Client, Clock, Ops, make_loop, ops
from tests.api.test_jobs import assert_error

__all__ = ["ops"]

ALIAS = "/functions/v1/jobs-api"


async def job(client: Client, key: str, job_id: str) -> dict[str, Any]:
    r = await client.get(f"/jobs/{job_id}", headers=bearer(key))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def history(client: Client, key: str, job_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/jobs/{job_id}/events", headers=bearer(key))
    assert r.status_code == 200, r.text
    return list(r.json())


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def submit(ops: Ops, key: str, **over: Any) -> dict[str, Any]:
    r = await ops.client.post("/jobs", json=sft(**over), headers=bearer(key))
    assert r.status_code == 201, r.text
    return dict(r.json())


# -- max_runtime_minutes ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", ALIAS])
@pytest.mark.parametrize("bad", [0, -1, 43201, 10**12, "5", 5.5, True, None])
async def test_max_runtime_out_of_range_is_400(
    app_client: Client, users: Users, prefix: str, bad: Any
) -> None:
    body = sft(max_runtime_minutes=bad)
    if bad is None:
        body = sft(max_runtime_minutes={"minutes": 5})
    r = await app_client.post(f"{prefix}/jobs", json=body, headers=bearer(users.alice))
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert "max_runtime_minutes" in error["message"]


@pytest.mark.parametrize("prefix", ["", ALIAS])
async def test_max_runtime_is_stored_and_shown(
    app_client: Client, users: Users, prefix: str
) -> None:
    for minutes in (1, 43200):
        r = await app_client.post(
            f"{prefix}/jobs", json=sft(max_runtime_minutes=minutes), headers=bearer(users.alice)
        )
        assert r.status_code == 201, r.text
        assert r.json()["max_runtime_minutes"] == minutes
        shown = await job(app_client, users.alice, r.json()["id"])
        assert shown["max_runtime_minutes"] == minutes
        listed = (await app_client.get(f"{prefix}/jobs", headers=bearer(users.alice))).json()
        assert listed[0]["max_runtime_minutes"] == minutes
    plain = (await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))).json()
    assert "max_runtime_minutes" not in plain  # none of its own: the default applies


async def test_a_job_over_its_limit_ends_cancelled_with_the_reason(ops: Ops, users: Users) -> None:
    made = await submit(ops, users.alice, max_runtime_minutes=5)
    await ops.tick()
    assert (await job(ops.client, users.alice, made["id"]))["state"] == "PROGRESS"
    ops.clock.forward(6)
    await ops.tick()
    shown = await job(ops.client, users.alice, made["id"])
    assert (shown["state"], shown["error"]) == ("CANCELLED", "max runtime exceeded (5 min)")
    events = await history(ops.client, users.alice, made["id"])
    asked = [e for e in events if e["type"] == "job.cancel_requested"]
    assert len(asked) == 1 and asked[0]["data"]["reason"] == "max runtime exceeded (5 min)"
    assert asked[0]["data"]["by"] == "ftq"
    state = await ops.sim("GET", "/_sim/state")
    assert state["cancel_requests"] == {made["id"]: 1}


# -- stuck jobs -------------------------------------------------------------------------


async def stuck_metric(client: Client) -> float:
    text = (await client.get("/metrics")).text
    (line,) = [x for x in text.splitlines() if x.startswith("ftq_stuck_jobs ")]
    return float(line.split()[1])


async def test_a_job_parked_in_pending_is_flagged_once_and_unflagged_when_it_moves(
    ops: Ops, users: Users
) -> None:
    made = await submit(ops, users.alice)
    await ops.tick()
    await ops.sim("POST", f"/_sim/jobs/{made['id']}/park", {"state": "PENDING"})
    await ops.tick()
    shown = await job(ops.client, users.alice, made["id"])
    assert shown["fireworks_state"] == "JOB_STATE_PENDING" and "stuck" not in shown
    ops.clock.forward(59)
    await ops.tick()
    assert "stuck" not in await job(ops.client, users.alice, made["id"])
    ops.clock.forward(2)
    with capture_logs() as logs:
        await ops.tick()
    shown = await job(ops.client, users.alice, made["id"])
    assert shown["stuck"] is True and shown["state"] == "PROGRESS"  # flagged, not cancelled
    assert shown["stuck_reason"].startswith("PENDING on Fireworks for 61 min (over 60)")
    assert [e["job_id"] for e in logs if e["event"] == "job.stuck_detected"] == [made["id"]]
    assert [e["log_level"] for e in logs if e["event"] == "job.stuck_detected"] == ["warning"]
    assert await stuck_metric(ops.client) == 1
    for _ in range(3):  # still parked: no second event
        ops.clock.forward(30)
        await ops.tick()
    events = await history(ops.client, users.alice, made["id"])
    assert types(events).count("job.stuck_detected") == 1
    (detected,) = [e for e in events if e["type"] == "job.stuck_detected"]
    assert detected["data"]["fireworks_state"] == "JOB_STATE_PENDING"
    # it moves: released, and Fireworks' clock runs on into RUNNING
    await ops.sim("DELETE", f"/_sim/jobs/{made['id']}/park")
    await ops.sim("POST", "/_sim/clock/advance", {"seconds": 15})
    await ops.tick()
    shown = await job(ops.client, users.alice, made["id"])
    assert "stuck" not in shown and "stuck_reason" not in shown
    assert shown["fireworks_state"] == "JOB_STATE_RUNNING"
    events = await history(ops.client, users.alice, made["id"])
    assert types(events)[-2:] == ["job.fireworks_state_observed", "job.stuck_cleared"]
    assert await stuck_metric(ops.client) == 0
    state = await ops.sim("GET", "/_sim/state")
    assert state["cancel_requests"] == {}
    await ops.clean()


async def test_running_with_no_change_is_flagged_after_the_stalled_threshold(
    ops: Ops, users: Users
) -> None:
    made = await submit(ops, users.alice)
    await ops.tick()
    await ops.sim("POST", f"/_sim/jobs/{made['id']}/park", {"state": "RUNNING"})
    await ops.tick()
    ops.clock.forward(239)
    await ops.tick()
    assert "stuck" not in await job(ops.client, users.alice, made["id"])
    ops.clock.forward(2)
    await ops.tick()
    shown = await job(ops.client, users.alice, made["id"])
    assert shown["stuck"] is True
    assert (
        "no change of state or progress on Fireworks for 241 min while RUNNING"
        in (shown["stuck_reason"])
    )


async def test_paused_on_fireworks_is_flagged_stuck_and_never_cancelled(
    ops: Ops, users: Users
) -> None:
    made = await submit(ops, users.alice)
    await ops.tick()
    await ops.sim("POST", f"/_sim/jobs/{made['id']}/outcome", {"state": "PAUSED"})
    await ops.tick()
    ops.clock.forward(61)
    await ops.tick()
    shown = await job(ops.client, users.alice, made["id"])
    assert (shown["state"], shown["fireworks_state"]) == ("PROGRESS", "JOB_STATE_PAUSED")
    assert shown["stuck"] is True and shown["stuck_reason"].startswith("PAUSED on Fireworks")
    ops.clock.forward(24 * 60)
    await ops.tick()
    assert (await job(ops.client, users.alice, made["id"]))["state"] == "PROGRESS"
    assert (await ops.sim("GET", "/_sim/state"))["cancel_requests"] == {}


async def test_deleted_on_fireworks_ends_the_job_cancelled_and_not_stuck(
    ops: Ops, users: Users
) -> None:
    made = await submit(ops, users.alice)
    await ops.tick()
    await ops.sim("POST", f"/_sim/jobs/{made['id']}/park", {"state": "PENDING"})
    await ops.tick()
    ops.clock.forward(61)
    await ops.tick()
    assert (await job(ops.client, users.alice, made["id"]))["stuck"] is True
    await ops.sim("POST", f"/_sim/jobs/{made['id']}/outcome", {"state": "DELETED"})
    await ops.tick()
    shown = await job(ops.client, users.alice, made["id"])
    assert (shown["state"], shown["fireworks_state"]) == ("CANCELLED", "JOB_STATE_DELETED")
    assert "stuck" not in shown
    assert await stuck_metric(ops.client) == 0
    await ops.clean()


async def test_an_unknown_fireworks_state_keeps_the_job_running_and_can_stall(
    ops: Ops, users: Users
) -> None:
    made = await submit(ops, users.alice)
    await ops.tick()
    await ops.sim("POST", f"/_sim/jobs/{made['id']}/outcome", {"state": "JOB_STATE_HIBERNATING"})
    with capture_logs() as logs:
        await ops.tick()
    assert any(e["event"] == "reconcile.unknown_fireworks_state" for e in logs)
    shown = await job(ops.client, users.alice, made["id"])
    assert (shown["state"], shown["fireworks_state"]) == ("PROGRESS", "JOB_STATE_HIBERNATING")
    ops.clock.forward(61)  # not a waiting state: the stuck threshold does not apply
    await ops.tick()
    assert "stuck" not in await job(ops.client, users.alice, made["id"])
    ops.clock.forward(180)
    await ops.tick()
    shown = await job(ops.client, users.alice, made["id"])
    assert shown["stuck"] is True and "while HIBERNATING" in shown["stuck_reason"]


async def test_thresholds_come_from_the_settings(
    pool: Any, app: Any, app_client: Client, users: Users
) -> None:
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        loop, sim_url = make_loop(pool, app, session, clock, stuck_minutes=5.0)
        quick = Ops(app_client, loop, clock, sim_url, session)
        made = await submit(quick, users.alice)
        await quick.tick()
        await quick.sim("POST", f"/_sim/jobs/{made['id']}/park", {"state": "PENDING"})
        await quick.tick()
        clock.forward(6)
        await quick.tick()
        shown = await job(app_client, users.alice, made["id"])
        assert shown["stuck"] is True and "(over 5)" in shown["stuck_reason"]


# -- requeue ----------------------------------------------------------------------------


async def count_events(ops: Ops) -> int:
    return await count_all_events(ops.loop._pool)


async def finish(ops: Ops, job_id: str, outcome: str) -> None:
    await ops.sim("POST", f"/_sim/jobs/{job_id}/outcome", {"state": outcome})
    await ops.tick()


@pytest.mark.parametrize("prefix", ["", ALIAS])
@pytest.mark.parametrize("ending", ["FAILED", "CANCELLED-BY-USER", "RUNTIME-LIMIT"])
async def test_requeue_makes_a_new_job_at_the_back_of_the_queue(
    ops: Ops, users: Users, prefix: str, ending: str
) -> None:
    old = await submit(
        ops, users.alice, gpu_count=2, display_name="sweep-7", max_runtime_minutes=5,
        gpu_type="h200",
    )  # fmt: skip
    await ops.tick()
    if ending == "FAILED":
        await finish(ops, old["id"], "FAILED")
        expected = "FAIL"
    elif ending == "RUNTIME-LIMIT":
        ops.clock.forward(6)
        await ops.tick()
        expected = "CANCELLED"
    else:
        r = await ops.client.delete(f"/jobs/{old['id']}", headers=bearer(users.alice))
        assert r.status_code == 200, r.text
        expected = "CANCELLED"
    assert (await job(ops.client, users.alice, old["id"]))["state"] == expected
    behind = await submit(ops, users.bob)  # queued before the requeue
    await ops.sim("POST", "/_sim/external-jobs", {"gpus": 8, "force": True})  # no room now
    r = await ops.client.post(f"{prefix}/jobs/{old['id']}/requeue", headers=bearer(users.alice))
    assert r.status_code == 201, r.text
    new = r.json()
    assert r.headers["location"] == f"{prefix}/jobs/{new['id']}"
    assert new["id"] != old["id"] and new["requeued_from"] == old["id"]
    assert new["state"] == "QUEUED" and new["user"] == "alice@example.com"
    kept = {"kind", "gpu_count", "display_name", "fireworks_payload", "max_runtime_minutes"}
    kept |= {"gpu_type", "priority"}
    assert old["gpu_type"] == "h200"
    for field in kept:
        assert new[field] == old[field], field
    assert new["created_at"] > old["created_at"] and new["error"] is None
    shown = await job(ops.client, users.alice, new["id"])
    assert shown["requeued_from"] == old["id"]
    queue = (await ops.client.get("/queue", headers=bearer(users.admin))).json()
    assert [e["id"] for e in queue][-2:] == [behind["id"], new["id"]]  # at the back
    (submitted,) = [
        e for e in await history(ops.client, users.alice, new["id"]) if e["type"] == "job.submitted"
    ]
    assert submitted["data"]["requeued_from"] == old["id"]
    assert submitted["data"]["max_runtime_minutes"] == 5
    # the old job is untouched
    assert (await job(ops.client, users.alice, old["id"]))["state"] == expected
    await ops.clean()


async def test_requeue_refuses_live_and_successful_jobs(ops: Ops, users: Users) -> None:
    running = await submit(ops, users.alice)
    await ops.tick()
    done = await submit(ops, users.bob)
    await ops.tick()
    await finish(ops, done["id"], "COMPLETED")
    queued = await submit(ops, users.alice)
    assert (await job(ops.client, users.alice, running["id"]))["state"] == "PROGRESS"
    assert (await job(ops.client, users.bob, done["id"]))["state"] == "SUCCESS"
    before = await count_events(ops)
    for key, made in ((users.alice, running), (users.bob, done), (users.alice, queued)):
        for prefix in ("", ALIAS):
            r = await ops.client.post(f"{prefix}/jobs/{made['id']}/requeue", headers=bearer(key))
            error = assert_error(r, 409, "INVALID_STATE")
            assert "only FAIL or CANCELLED" in error["message"]
    assert await count_events(ops) == before


async def test_requeue_is_for_the_owner_or_an_admin(ops: Ops, users: Users) -> None:
    old = await submit(ops, users.alice)
    r = await ops.client.delete(f"/jobs/{old['id']}", headers=bearer(users.alice))
    assert r.status_code == 200
    r = await ops.client.post(f"/jobs/{old['id']}/requeue", headers=bearer(users.bob))
    assert_error(r, 404, "NOT_FOUND")  # another member's job does not exist for bob
    assert_error(await ops.client.post(f"/jobs/{old['id']}/requeue"), 401, "UNAUTHENTICATED")
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        r = await ops.client.post(f"/jobs/{missing}/requeue", headers=bearer(users.alice))
        assert_error(r, 404, "NOT_FOUND")
    r = await ops.client.post(f"/jobs/{old['id']}/requeue", headers=bearer(users.admin))
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["user"] == "alice@example.com"  # the owner's job, requeued by an admin
    assert (await job(ops.client, users.alice, new["id"]))["requeued_from"] == old["id"]
    events = await history(ops.client, users.admin, new["id"])
    assert events[0]["type"] == "job.submitted"
    # requeue of the requeued job, and of the same old job again: each a new job
    again = await ops.client.post(f"/jobs/{old['id']}/requeue", headers=bearer(users.alice))
    assert again.status_code == 201 and again.json()["id"] != new["id"]


async def test_requeue_is_in_the_openapi_document(app_client: Client) -> None:
    paths = (await app_client.get("/schema/openapi.json")).json()["paths"]
    post = paths["/jobs/{id}/requeue"]["post"]  # the alias is listed once, in the description
    assert {"201", "401", "404", "409"} <= set(post["responses"])


@pytest.mark.parametrize("prefix", ["", ALIAS])
async def test_max_runtime_in_a_batch_is_checked_per_item_and_enforced(
    ops: Ops, users: Users, prefix: str
) -> None:
    items = [sft(max_runtime_minutes=5), sft(max_runtime_minutes=0), sft()]
    r = await ops.client.post(f"{prefix}/jobs/batch", json=items, headers=bearer(users.alice))
    assert r.status_code == 200, r.text
    results = r.json()
    assert [x["status"] for x in results] == [201, 400, 201]
    assert results[1]["error"]["details"][0]["field"] == "max_runtime_minutes"
    limited = results[0]["job"]
    assert limited["max_runtime_minutes"] == 5 and "max_runtime_minutes" not in results[2]["job"]
    assert (await job(ops.client, users.alice, limited["id"]))["max_runtime_minutes"] == 5
    await ops.tick()
    ops.clock.forward(6)
    await ops.tick()
    shown = await job(ops.client, users.alice, limited["id"])
    assert (shown["state"], shown["error"]) == ("CANCELLED", "max runtime exceeded (5 min)")
    async with ops.loop._pool.acquire() as conn:
        assert await verify(conn) == []  # the job_operations rows a batch wrote match the log
