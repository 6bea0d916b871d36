"""Runtime limits and stuck jobs through the HTTP API: the app, its simulator (steered over
`/_sim`), and an admission loop with an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Users, bearer, sft
from tests.api.operations_env import Client, Ops, ops
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
