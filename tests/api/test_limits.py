"""Flood limits (issue 18 item 6): FTQ_MAX_QUEUED_PER_USER and FTQ_SUBMIT_RATE_PER_MINUTE,
429 RATE_LIMITED with Retry-After and nothing recorded; the rate bucket is shared by two app
instances on one database; admins are exempt; a batch counts each new item."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from tests.api.conftest import bearer, count_events, make_user, sft

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def replicas(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Client, Client]]:
    """Two app instances on one database, with the limits the test's marker asks for."""
    limits = getattr(request, "param", {})
    settings = Settings(
        database_url=db_url,
        fireworks_base_url="simulator",
        fireworks_gpu_quota=8,
        data_dir=tmp_path,
        log_level="warning",
        **limits,
    )
    one = create_app(settings, run_scheduler=False)
    two = create_app(
        msgspec.structs.replace(settings, data_dir=tmp_path / "two"), run_scheduler=False
    )
    async with AsyncTestClient(app=one) as a, AsyncTestClient(app=two) as b:
        yield a, b


def assert_limited(response: object, retry_max: int) -> dict[str, object]:
    r = response
    assert r.status_code == 429, r.text  # type: ignore[attr-defined]
    error = r.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "RATE_LIMITED" and error["details"]
    retry = int(r.headers["retry-after"])  # type: ignore[attr-defined]
    assert 1 <= retry <= retry_max
    return dict(error)


RATE = {"submit_rate_per_minute": 6, "max_queued_per_user": 0}


@pytest.mark.parametrize("replicas", [RATE], indirect=True)
async def test_rate_is_shared_by_replicas(
    replicas: tuple[Client, Client], pool: asyncpg.Pool
) -> None:
    a, b = replicas
    _, alice = await make_user(pool, "alice@example.com")
    _, root = await make_user(pool, "root@example.com", "admin")
    for n in range(6):
        r = await (a if n % 2 else b).post("/jobs", json=sft(), headers=bearer(alice))
        assert r.status_code == 201, r.text
    before = await count_events(pool)
    error = assert_limited(await a.post("/jobs", json=sft(), headers=bearer(alice)), 60)
    assert "FTQ_SUBMIT_RATE_PER_MINUTE" in str(error["message"])
    assert_limited(await b.post("/jobs/batch", json=[sft()], headers=bearer(alice)), 60)
    alias = "/functions/v1/jobs-api/jobs"
    assert_limited(await b.post(alias, json=sft(), headers=bearer(alice)), 60)
    assert await count_events(pool) == before  # nothing recorded
    # admins are exempt
    for _ in range(8):
        r = await b.post("/jobs", json=sft(), headers=bearer(root))
        assert r.status_code == 201
    # idempotent repeats create nothing and are not limited (room for one more: five of
    # alice's six submits move out of the last minute)
    await pool.execute(
        "UPDATE jobs SET created_at = created_at - interval '2 minutes' WHERE id IN"
        " (SELECT id FROM jobs WHERE user_email = 'alice@example.com'"
        " ORDER BY created_at LIMIT 5)"
    )
    keyed = {**bearer(alice), "Idempotency-Key": "k"}
    assert (await a.post("/jobs", json=sft(), headers=keyed)).status_code == 201
    assert (await b.post("/jobs", json=sft(), headers=keyed)).status_code == 200
    r = await a.post("/jobs/batch", json=[sft(idempotency_key="k")], headers=bearer(alice))
    assert r.status_code == 200 and r.json()[0]["status"] == 200


@pytest.mark.parametrize("replicas", [RATE], indirect=True)
async def test_a_batch_counts_each_item(
    replicas: tuple[Client, Client], pool: asyncpg.Pool
) -> None:
    a, b = replicas
    _, alice = await make_user(pool, "alice@example.com")
    r = await a.post("/jobs/batch", json=[sft()] * 4, headers=bearer(alice))
    assert r.status_code == 200
    before = await count_events(pool)
    # 4 of 6 in the last minute: 3 new items are too many (the bad item does not count)
    items = [sft(), sft(), sft(), {"kind": "nope"}]
    error = assert_limited(await b.post("/jobs/batch", json=items, headers=bearer(alice)), 60)
    assert error["details"] == [{"limit": "submit_rate_per_minute", "per_minute": 6, "asked": 3}]
    assert await count_events(pool) == before
    r = await b.post("/jobs/batch", json=items[1:], headers=bearer(alice))
    assert r.status_code == 200 and [x["status"] for x in r.json()] == [201, 201, 400]
    # a batch larger than a minute's worth passes only after a quiet minute
    assert_limited(await a.post("/jobs/batch", json=[sft()] * 9, headers=bearer(alice)), 60)
    await pool.execute("UPDATE jobs SET created_at = created_at - interval '2 minutes'")
    r = await a.post("/jobs/batch", json=[sft()] * 9, headers=bearer(alice))
    assert r.status_code == 200 and [x["status"] for x in r.json()] == [201] * 9
    assert_limited(await a.post("/jobs", json=sft(), headers=bearer(alice)), 60)


QUEUE = {"submit_rate_per_minute": 0, "max_queued_per_user": 3}


@pytest.mark.parametrize("replicas", [QUEUE], indirect=True)
async def test_queued_jobs_per_user(replicas: tuple[Client, Client], pool: asyncpg.Pool) -> None:
    a, b = replicas
    _, alice = await make_user(pool, "alice@example.com")
    _, bob = await make_user(pool, "bob@example.com")
    r = await a.post("/jobs/batch", json=[sft()] * 2, headers=bearer(alice))
    assert [x["status"] for x in r.json()] == [201, 201]
    assert_limited(await b.post("/jobs/batch", json=[sft()] * 2, headers=bearer(alice)), 60)
    made = await b.post("/jobs", json=sft(), headers=bearer(alice))
    assert made.status_code == 201
    error = assert_limited(await a.post("/jobs", json=sft(), headers=bearer(alice)), 60)
    assert "FTQ_MAX_QUEUED_PER_USER" in str(error["message"])
    assert (await a.post("/jobs", json=sft(), headers=bearer(bob))).status_code == 201
    # a job that leaves the queue makes room
    gone = await a.delete(f"/jobs/{made.json()['id']}", headers=bearer(alice))
    assert gone.status_code == 200
    assert (await b.post("/jobs", json=sft(), headers=bearer(alice))).status_code == 201


@pytest.mark.parametrize("replicas", [{"max_queued_per_user": 1}], indirect=True)
async def test_a_requeue_counts_as_a_new_job(
    replicas: tuple[Client, Client], pool: asyncpg.Pool
) -> None:
    a, _ = replicas
    _, alice = await make_user(pool, "alice@example.com")
    first = (await a.post("/jobs", json=sft(), headers=bearer(alice))).json()["id"]
    assert (await a.delete(f"/jobs/{first}", headers=bearer(alice))).status_code == 200
    assert (await a.post("/jobs", json=sft(), headers=bearer(alice))).status_code == 201
    before = await count_events(pool)
    assert_limited(await a.post(f"/jobs/{first}/requeue", headers=bearer(alice)), 60)
    assert await count_events(pool) == before
