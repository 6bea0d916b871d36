"""`after` on submit (issue 18 item 5) through the API: who may be named, the reason a job
waits, the queue, batches, idempotent retries. The admission loop's side (gating, failing
at once, the SFT -> DPO chain end to end) is in tests/integration/test_pipelines.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from events.domain.job import JOB
from events.domain.job_commands import ConfirmAdmission, ObserveFireworks, StartAdmission
from events.domain.job_events import AdmissionReason
from service.commands import run_command
from tests.api.conftest import DPO_PAYLOAD, META, Users, bearer, count_events, sft

Client = AsyncTestClient[Litestar]


def dpo_after(*after: str, **over: Any) -> dict[str, Any]:
    payload = {**DPO_PAYLOAD, "warmStartFrom": "accounts/me/models/sft-out"}
    payload.pop("trainingConfig")
    return {"kind": "DPO", "fireworks_payload": payload, "after": list(after), **over}


async def succeed(pool: asyncpg.Pool, job_id: str) -> None:
    reason = AdmissionReason(policy="t", quota=8, in_use=0, available=8, queue_position=1)
    now = datetime.now(UTC)
    await run_command(pool, JOB, job_id, StartAdmission(
        at=now, fireworks_job_id=job_id, fireworks_job_name=f"a/{job_id}", reason=reason
    ), META)  # fmt: skip
    await run_command(pool, JOB, job_id, ConfirmAdmission(at=now), META)
    observed = ObserveFireworks(at=now, fireworks_state="JOB_STATE_COMPLETED")
    await run_command(pool, JOB, job_id, observed, META)


async def post(client: Client, key: str, body: Any) -> Any:
    return await client.post("/jobs", json=body, headers=bearer(key))


async def test_a_chain_can_be_submitted_at_once(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    first = (await post(app_client, users.alice, sft())).json()
    made = await post(app_client, users.alice, dpo_after(first["id"]))
    assert made.status_code == 201, made.text
    dpo = made.json()
    assert dpo["state"] == "QUEUED"
    assert dpo["pending_reason"] == f"waiting for job {first['id']} to succeed"
    got = (await app_client.get(f"/jobs/{dpo['id']}", headers=bearer(users.alice))).json()
    assert got["pending_reason"] == f"waiting for job {first['id']} to succeed"
    queue = (await app_client.get("/queue", headers=bearer(users.alice))).json()
    assert [e["id"] for e in queue] == [first["id"], dpo["id"]]
    assert queue[1]["pending_reason"].startswith("waiting for job")
    assert queue[0]["pending_reason"] != queue[1]["pending_reason"]
    await succeed(pool, first["id"])
    async with asyncio.timeout(5):  # views may use a plan up to a fraction of a second old
        while got["pending_reason"].startswith("waiting"):
            await asyncio.sleep(0.05)
            got = (await app_client.get(f"/jobs/{dpo['id']}", headers=bearer(users.alice))).json()
    assert got["pending_reason"] == "next to be admitted"
    rows = await pool.fetch("SELECT job_id::text, after_id::text FROM job_dependencies")
    assert [tuple(r) for r in rows] == [(dpo["id"], first["id"])]
    # naming a job that already succeeded: no wait at all
    later = (await post(app_client, users.alice, dpo_after(first["id"]))).json()
    assert not later["pending_reason"].startswith("waiting")


@pytest.mark.parametrize("case", ["unknown", "bob's", "not an id", "cancelled"])
async def test_bad_after_is_400_and_creates_nothing(
    app_client: Client, users: Users, pool: asyncpg.Pool, case: str
) -> None:
    bobs = (await post(app_client, users.bob, sft())).json()["id"]
    gone = (await post(app_client, users.alice, sft())).json()["id"]
    await app_client.delete(f"/jobs/{gone}", headers=bearer(users.alice))
    named = {
        "unknown": str(uuid.uuid4()),
        "bob's": bobs,
        "not an id": "sft-1",
        "cancelled": gone,
    }[case]
    before = await count_events(pool)
    r = await post(app_client, users.alice, dpo_after(named))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["details"][0]["field"] == "after.0"
    if case in ("unknown", "bob's"):  # the same words: existence is not leaked
        assert error["message"] == f"after names job {named}, which is not one of your jobs"
    if case == "cancelled":
        assert "CANCELLED" in error["message"]
    assert await count_events(pool) == before
    # even an admin names only their own jobs
    r = await post(app_client, users.admin, dpo_after(bobs))
    assert r.status_code == 400


async def test_after_in_a_batch_and_on_retry(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    first = (await post(app_client, users.alice, sft())).json()["id"]
    items = [
        dpo_after(first, idempotency_key="d1"),
        dpo_after(str(uuid.uuid4())),
        dpo_after(first, first),  # named twice: once
    ]
    r = await app_client.post("/jobs/batch", json=items, headers=bearer(users.alice))
    results = r.json()
    assert [x["status"] for x in results] == [201, 400, 201]
    assert results[0]["job"]["pending_reason"] == f"waiting for job {first} to succeed"
    assert results[1]["error"]["details"][0]["field"] == "after.0"
    r = await app_client.post("/jobs/batch?atomic=true", json=items, headers=bearer(users.alice))
    assert r.status_code == 400 and [d["index"] for d in r.json()["error"]["details"]] == [1]
    count = await pool.fetchval("SELECT count(*) FROM job_dependencies")
    assert count == 2
    # a retry under the same key is the same job; another `after` is another body
    again = await app_client.post("/jobs/batch", json=items[:1], headers=bearer(users.alice))
    assert again.json()[0]["status"] == 200
    other = (await post(app_client, users.alice, sft())).json()["id"]
    changed = [dpo_after(other, idempotency_key="d1")]
    r = await app_client.post("/jobs/batch", json=changed, headers=bearer(users.alice))
    assert r.json()[0]["status"] == 409
