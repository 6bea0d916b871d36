"""POST /jobs/batch (issue 18 item 1): per-item results in input order, one group commit for
the good items, idempotent retries, ?atomic=true, NDJSON, the alias, and bad batches."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import DPO_PAYLOAD, Users, bearer, count_events, sft

Client = AsyncTestClient[Litestar]
ALIAS = "/functions/v1/jobs-api"


def ndjson(items: list[Any]) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


async def jobs_in_db(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM jobs"))


async def transactions_of_submits(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(DISTINCT transaction_id) FROM events WHERE type = 'job.submitted'"
        )
    )


def mixed() -> list[Any]:
    return [
        sft(display_name="a"),
        {"kind": "SFT", "fireworks_payload": {"dataset": "d"}},  # no model
        sft(gpu_count="4"),  # a string, not an integer
        "not an object",
        {"kind": "DPO", "fireworks_payload": DPO_PAYLOAD, "gpu_count": 8},
        sft(typo=1),
    ]


@pytest.mark.parametrize("prefix", ["", ALIAS])
async def test_good_and_bad_items_in_input_order(
    app_client: Client, users: Users, pool: asyncpg.Pool, prefix: str
) -> None:
    r = await app_client.post(f"{prefix}/jobs/batch", json=mixed(), headers=bearer(users.alice))
    assert r.status_code == 200, r.text
    results = r.json()
    assert [x["index"] for x in results] == list(range(6))
    assert [x["status"] for x in results] == [201, 400, 400, 400, 201, 400]
    for x in results:
        if x["status"] == 201:
            assert set(x) == {"index", "status", "job"} and x["job"]["state"] == "QUEUED"
            assert x["job"]["user"] == "alice@example.com"
        else:
            assert set(x) == {"index", "status", "error"}
            assert set(x["error"]) == {"code", "message", "details"}
            assert x["error"]["code"] == "VALIDATION_ERROR"
    assert results[1]["error"]["details"][0]["field"] == "fireworks_payload.baseModel"
    assert results[2]["error"]["details"][0]["field"] == "gpu_count"
    assert results[5]["error"]["details"][0]["field"] == "typo"
    assert results[0]["job"]["display_name"] == "a" and results[4]["job"]["kind"] == "DPO"
    assert await jobs_in_db(pool) == 2
    assert await transactions_of_submits(pool) == 1  # one group, one commit
    positions = [results[0]["job"]["queue_position"], results[4]["job"]["queue_position"]]
    assert positions == [1, 2]
    got = await app_client.get(f"/jobs/{results[4]['job']['id']}", headers=bearer(users.alice))
    assert got.status_code == 200 and got.json()["gpu_count"] == 8


async def test_retry_with_same_keys_creates_nothing_new(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    items = [sft(idempotency_key=f"sweep-{n}", display_name=f"lr-{n}") for n in range(5)]
    first = await app_client.post("/jobs/batch", json=items, headers=bearer(users.alice))
    assert [x["status"] for x in first.json()] == [201] * 5
    events = await count_events(pool)
    again = await app_client.post("/jobs/batch", json=items, headers=bearer(users.alice))
    assert again.status_code == 200
    assert [x["status"] for x in again.json()] == [200] * 5
    assert [x["job"]["id"] for x in again.json()] == [x["job"]["id"] for x in first.json()]
    assert await count_events(pool) == events and await jobs_in_db(pool) == 5
    # a key of the batch is the same key for POST /jobs (same body: the same job)
    body = sft(display_name="lr-2")
    single = await app_client.post(
        "/jobs", json=body, headers={**bearer(users.alice), "Idempotency-Key": "sweep-2"}
    )
    assert single.status_code == 200 and single.json()["id"] == first.json()[2]["job"]["id"]
    # another body under a used key: 409 for that item only; a new key still goes in
    changed = [sft(idempotency_key="sweep-0", display_name="other"), sft(idempotency_key="new")]
    r = await app_client.post("/jobs/batch", json=changed, headers=bearer(users.alice))
    assert [x["status"] for x in r.json()] == [409, 201]
    assert r.json()[0]["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    # keys are per user: bob's "sweep-0" is his own job
    r = await app_client.post("/jobs/batch", json=items[:1], headers=bearer(users.bob))
    assert r.json()[0]["status"] == 201


async def test_same_key_twice_in_one_batch(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    items = [
        sft(idempotency_key="k"),
        sft(idempotency_key="k"),
        sft(idempotency_key="k", display_name="x"),
    ]
    r = await app_client.post("/jobs/batch", json=items, headers=bearer(users.alice))
    results = r.json()
    assert [x["status"] for x in results] == [201, 200, 409]
    assert results[0]["job"]["id"] == results[1]["job"]["id"]
    assert await jobs_in_db(pool) == 1


async def test_atomic_all_or_nothing(app_client: Client, users: Users, pool: asyncpg.Pool) -> None:
    await app_client.post(
        "/jobs/batch", json=[sft(idempotency_key="old")], headers=bearer(users.alice)
    )
    before = await count_events(pool)
    r = await app_client.post(
        f"{ALIAS}/jobs/batch?atomic=true", json=mixed(), headers=bearer(users.alice)
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [d["index"] for d in error["details"]] == [1, 2, 3, 5]
    assert all(d["code"] == "VALIDATION_ERROR" and d["message"] for d in error["details"])
    assert await count_events(pool) == before
    # an idempotent repeat counts as good
    good = [sft(idempotency_key="old"), sft(display_name="n")]
    r = await app_client.post("/jobs/batch?atomic=true", json=good, headers=bearer(users.alice))
    assert r.status_code == 200 and [x["status"] for x in r.json()] == [200, 201]
    # a conflicting key is a bad item
    bad = [sft(idempotency_key="old", display_name="changed"), sft()]
    r = await app_client.post("/jobs/batch?atomic=true", json=bad, headers=bearer(users.alice))
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["code"] == "IDEMPOTENCY_CONFLICT"
    assert await jobs_in_db(pool) == 2


async def test_ndjson(app_client: Client, users: Users, pool: asyncpg.Pool) -> None:
    headers = {**bearer(users.alice), "Content-Type": "application/x-ndjson"}
    body = ndjson([sft(), sft(gpu_count=2)]) + b"\n" + ndjson([sft(gpu_count=0)])
    r = await app_client.post("/jobs/batch", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()] == [201, 201, 400]
    assert await jobs_in_db(pool) == 2
    broken = ndjson([sft()]) + b'{"kind": "SFT",\n' + ndjson([sft()])
    r = await app_client.post("/jobs/batch", content=broken, headers=headers)
    assert r.status_code == 400
    error = r.json()["error"]
    assert "line 2" in error["message"] and error["details"][0]["line"] == 2
    assert await jobs_in_db(pool) == 2


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b'{"kind": "SFT"}', 1),
        (b"42", 1),
        (b"[\n" + json.dumps(sft()).encode() + b",\n{oops}\n]", 3),
        (b"", 1),
    ],
)
async def test_not_an_array_is_400_naming_the_line(
    app_client: Client, users: Users, pool: asyncpg.Pool, body: bytes, line: int
) -> None:
    headers = {**bearer(users.alice), "Content-Type": "application/json"}
    r = await app_client.post("/jobs/batch", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"][0]["line"] == line
    assert await jobs_in_db(pool) == 0


async def test_too_many_or_too_large_is_413(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    r = await app_client.post("/jobs/batch", json=[sft()] * 1001, headers=bearer(users.alice))
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    headers = {**bearer(users.alice), "Content-Type": "application/x-ndjson"}
    r = await app_client.post("/jobs/batch", content=ndjson([sft()] * 1001), headers=headers)
    assert r.status_code == 413
    big = [sft(display_name="x" * 200, fireworks_payload={"dataset": "d" * 600_000})] * 2
    r = await app_client.post("/jobs/batch", json=big, headers=bearer(users.alice))
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert await jobs_in_db(pool) == 0


async def test_a_full_batch_is_one_commit(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    items = [sft(display_name=f"j{n}") for n in range(1000)]
    r = await app_client.post("/jobs/batch", json=items, headers=bearer(users.alice))
    assert r.status_code == 200
    results = r.json()
    assert [x["status"] for x in results] == [201] * 1000
    assert [x["job"]["display_name"] for x in results] == [f"j{n}" for n in range(1000)]
    assert [x["job"]["queue_position"] for x in results] == list(range(1, 1001))
    assert await jobs_in_db(pool) == 1000 and await transactions_of_submits(pool) == 1


async def test_concurrent_batches_with_one_key_make_one_job(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    items = [sft(idempotency_key="race"), sft()]
    answers = await asyncio.gather(
        *(app_client.post("/jobs/batch", json=items, headers=bearer(users.alice)) for _ in range(4))
    )
    assert all(a.status_code == 200 for a in answers)
    assert sorted(a.json()[0]["status"] for a in answers) == [200, 200, 200, 201]
    assert len({a.json()[0]["job"]["id"] for a in answers}) == 1
    assert await jobs_in_db(pool) == 5


async def test_unauthenticated_and_empty(app_client: Client, users: Users) -> None:
    r = await app_client.post("/jobs/batch", json=[sft()])
    assert r.status_code == 401
    r = await app_client.post("/jobs/batch", json=[], headers=bearer(users.alice))
    assert r.status_code == 200 and r.json() == []
