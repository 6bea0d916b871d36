"""Payload secrets at rest (issue 20): sealed in the log at submit, opened only for the
Fireworks create (byte-exact), shown as "***" everywhere, shredded on request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from tests.api.conftest import SFT_PAYLOAD, Users, bearer

Client = AsyncTestClient[Litestar]
WANDB = 'wb-Sécret ✓ "quoted" \\ 0123456789abcdef'
AWS = "aws/SECRET+key=="
HF = "hf_tokenvalue_42"


def secret_payload() -> dict[str, Any]:
    return {
        **SFT_PAYLOAD,
        "wandbConfig": {"apiKey": WANDB, "project": "p", "entity": "e"},
        "awsS3Config": {"credentialsSecret": AWS, "bucket": "b"},
        "extra": {"hfToken": HF, "maxOutputTokens": 1024},
    }


SECRETS = (WANDB, AWS, HF)


def leaks(text: str) -> list[str]:
    """Which secrets `text` holds, as written or JSON-escaped."""
    found = []
    for secret in SECRETS:
        escaped = json.dumps(secret)[1:-1]
        if secret in text or escaped in text or secret.encode("unicode_escape").decode() in text:
            found.append(secret)
    return found


@pytest.fixture
async def sched_client(api_settings: Settings) -> AsyncIterator[Client]:
    app = create_app(api_settings, run_scheduler=True)
    async with AsyncTestClient(app=app) as client:
        yield client


async def submit(client: Client, key: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = {"kind": "SFT", "gpu_count": 1, "fireworks_payload": payload}
    resp = await client.post("/jobs", json=body, headers=bearer(key))
    assert resp.status_code == 201, resp.text
    assert not leaks(resp.text)
    out: dict[str, Any] = resp.json()
    return out


async def wait_state(client: Client, key: str, job_id: str, *states: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            got = await client.get(f"/jobs/{job_id}", headers=bearer(key))
            if got.json()["state"] in states:
                view: dict[str, Any] = got.json()
                return view
            await asyncio.sleep(0.05)


async def raw_rows(pool: asyncpg.Pool) -> str:
    rows = await pool.fetch("SELECT data::text, metadata::text FROM events")
    jobs = await pool.fetch("SELECT t::text FROM jobs t")
    return "\n".join([*(r[0] + r[1] for r in rows), *(r[0] for r in jobs)])


async def test_secrets_are_sealed_in_the_log_and_shown_masked(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    job = await submit(app_client, users.alice, secret_payload())
    assert job["fireworks_payload"]["wandbConfig"] == {
        "apiKey": "***",
        "project": "p",
        "entity": "e",
    }
    assert job["fireworks_payload"]["extra"] == {"hfToken": "***", "maxOutputTokens": 1024}
    text = await raw_rows(pool)
    assert leaks(text) == []
    data = json.loads(
        await pool.fetchval("SELECT data::text FROM events WHERE type = 'job.submitted'")
    )
    sealed = data["fireworks_payload"]["wandbConfig"]["apiKey"]
    assert sealed["$ftq_enc"] == "v1" and set(sealed) == {"$ftq_enc", "n", "c"}
    assert data["fireworks_payload"]["wandbConfig"]["project"] == "p"  # the rest stays plain
    assert await pool.fetchval("SELECT count(*) FROM job_data_keys") == 1
    for path in (f"/jobs/{job['id']}", "/jobs", f"/jobs/{job['id']}/events"):
        resp = await app_client.get(path, headers=bearer(users.alice))
        assert resp.status_code == 200 and not leaks(resp.text), path


async def test_a_job_without_secrets_gets_no_key(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    await submit(app_client, users.alice, dict(SFT_PAYLOAD))
    assert await pool.fetchval("SELECT count(*) FROM job_data_keys") == 0


async def test_a_forged_sealed_value_is_refused(app_client: Client, users: Users) -> None:
    payload = {**SFT_PAYLOAD, "wandbConfig": {"apiKey": {"$ftq_enc": "v1", "n": "", "c": ""}}}
    body = {"kind": "SFT", "fireworks_payload": payload}
    resp = await app_client.post("/jobs", json=body, headers=bearer(users.alice))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_fireworks_gets_the_payload_byte_exact(
    sched_client: Client, users: Users, pool: asyncpg.Pool, api_settings: Settings
) -> None:
    submitted = secret_payload()
    job = await submit(sched_client, users.alice, submitted)
    await wait_state(sched_client, users.alice, job["id"], "PROGRESS")
    runtime = sched_client.app.state.runtime
    sim_jobs = runtime.simulator.sim.state.jobs
    (received,) = [j.payload for j in sim_jobs.values()]
    received = {k: v for k, v in received.items() if k not in ("displayName",)}
    enc = msgspec.json.Encoder(order="sorted")
    assert enc.encode(received) == enc.encode(submitted)
    assert received["wandbConfig"]["apiKey"] == WANDB
    assert leaks(await raw_rows(pool)) == []


async def test_shred_needs_an_ended_job_and_records_who(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    job = await submit(app_client, users.alice, secret_payload())
    path = f"/jobs/{job['id']}/secrets"
    resp = await app_client.delete(path, headers=bearer(users.alice))
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "INVALID_STATE"
    assert (await app_client.delete(path, headers=bearer(users.bob))).status_code == 404
    assert (await app_client.delete(f"/jobs/{job['id']}", headers=bearer(users.alice))).is_success
    resp = await app_client.delete(path, headers=bearer(users.alice))
    assert resp.status_code == 200, resp.text
    assert resp.json()["by"] == "alice@example.com"
    assert await pool.fetchval("SELECT count(*) FROM job_data_keys") == 0
    again = await app_client.delete(path, headers=bearer(users.admin))
    assert again.status_code == 200
    events = (await app_client.get(f"/jobs/{job['id']}/events", headers=bearer(users.alice))).json()
    shredded = [e for e in events if e["type"] == "job.secrets_shredded"]
    assert len(shredded) == 1 and shredded[0]["data"]["by"] == "alice@example.com"
    # The job itself is intact and still shown.
    view = (await app_client.get(f"/jobs/{job['id']}", headers=bearer(users.alice))).json()
    assert (
        view["state"] == "CANCELLED" and view["fireworks_payload"]["wandbConfig"]["apiKey"] == "***"
    )


async def test_a_batch_seals_every_item(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    items = [{"kind": "SFT", "fireworks_payload": secret_payload()} for _ in range(3)]
    resp = await app_client.post("/jobs/batch", json=items, headers=bearer(users.alice))
    assert resp.status_code == 200, resp.text
    assert [r["status"] for r in resp.json()] == [201] * 3 and not leaks(resp.text)
    assert leaks(await raw_rows(pool)) == []
    assert await pool.fetchval("SELECT count(*) FROM job_data_keys") == 3
    for result in resp.json():  # each job's history (live streams redact the same way)
        path = f"/jobs/{result['job']['id']}/events"
        history = await app_client.get(path, headers=bearer(users.alice))
        assert "***" in history.text and not leaks(history.text)


async def test_a_requeue_seals_anew_and_asks_again_once_shredded(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    submitted = secret_payload()
    job = await submit(app_client, users.alice, submitted)
    assert (await app_client.delete(f"/jobs/{job['id']}", headers=bearer(users.alice))).is_success
    again = await app_client.post(f"/jobs/{job['id']}/requeue", headers=bearer(users.alice))
    assert again.status_code == 201, again.text
    assert not leaks(again.text)
    new_id = again.json()["id"]
    stored = json.loads(
        await pool.fetchval("SELECT fireworks_payload::text FROM jobs WHERE id = $1", new_id)
    )
    vault = app_client.app.state.runtime.vault
    assert await vault.open(pool, new_id, stored) == submitted  # under the new job's own key
    assert await pool.fetchval("SELECT count(*) FROM job_data_keys") == 2
    assert leaks(await raw_rows(pool)) == []

    path = f"/jobs/{job['id']}/secrets"
    assert (await app_client.delete(path, headers=bearer(users.alice))).status_code == 200
    refused = await app_client.post(f"/jobs/{job['id']}/requeue", headers=bearer(users.alice))
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    fields = {d["field"] for d in error["details"]}
    assert fields == {
        "fireworks_payload.wandbConfig.apiKey",
        "fireworks_payload.awsS3Config.credentialsSecret",
        "fireworks_payload.extra.hfToken",
    }
