"""POST/GET /jobs and GET/DELETE /jobs/{id}: bodies, validation, isolation, idempotency,
pagination and cancel."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from events.domain.job import JOB
from events.domain.job_commands import StartAdmission
from events.domain.job_events import AdmissionReason
from service.commands import run_command
from tests.api.conftest import (
    DPO_PAYLOAD,
    META,
    RFT_PAYLOAD,
    SFT_PAYLOAD,
    Users,
    bearer,
    count_events,
    sft,
)

Client = AsyncTestClient[Litestar]
JOB_FIELDS = {
    "id", "kind", "state", "display_name", "gpu_count", "created_at", "started_at",
    "completed_at", "error", "fireworks_job_name", "fireworks_state", "progress", "user",
    "fireworks_payload",
}  # fmt: skip


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["details"], list)
    return dict(body["error"])


@pytest.mark.parametrize(
    ("kind", "payload"), [("SFT", SFT_PAYLOAD), ("DPO", DPO_PAYLOAD), ("RFT", RFT_PAYLOAD)]
)
async def test_submit_each_kind(app_client: Client, users: Users, kind: str, payload: Any) -> None:
    body = {"kind": kind, "fireworks_payload": payload, "gpu_count": 8, "display_name": "demo"}
    r = await app_client.post("/jobs", json=body, headers=bearer(users.alice))
    assert r.status_code == 201, r.text
    job = r.json()
    assert set(job) >= JOB_FIELDS
    assert job["state"] == "QUEUED" and job["kind"] == kind and job["gpu_count"] == 8
    assert job["user"] == "alice@example.com" and job["display_name"] == "demo"
    assert job["queue_position"] == 1 and isinstance(job["pending_reason"], str)
    got = await app_client.get(f"/jobs/{job['id']}", headers=bearer(users.alice))
    assert got.status_code == 200 and got.json()["id"] == job["id"]


async def test_job_ids_are_time_ordered_uuids(app_client: Client, users: Users) -> None:
    """Version 7: each new id sorts after the last, so the log's stream index and the jobs
    table's primary key grow at their right edge (events.store.ids)."""
    ids = []
    for _ in range(3):
        r = await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))
        assert r.status_code == 201, r.text
        ids.append(uuid.UUID(r.json()["id"]))
    assert [i.version for i in ids] == [7, 7, 7]
    assert ids == sorted(ids) and len(set(ids)) == 3


async def test_defaults_gpu_count_4(app_client: Client, users: Users) -> None:
    r = await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))
    assert r.status_code == 201 and r.json()["gpu_count"] == 4


BAD_BODIES: list[tuple[str, Any, str | None]] = [
    ("not json", b"{nope", None),
    ("array", [1, 2], None),
    ("no kind", {"fireworks_payload": SFT_PAYLOAD}, "kind"),
    ("bad kind", {"kind": "PPO", "fireworks_payload": SFT_PAYLOAD}, "kind"),
    ("no payload", {"kind": "SFT"}, "fireworks_payload"),
    ("payload not object", {"kind": "SFT", "fireworks_payload": "x"}, "fireworks_payload"),
    ("unknown field", sft(gpus=4), "gpus"),
    ("gpu 0", sft(gpu_count=0), "gpu_count"),
    ("gpu 1025", sft(gpu_count=1025), "gpu_count"),
    ("gpu float", sft(gpu_count=2.5), "gpu_count"),
    ("gpu string", sft(gpu_count="4"), "gpu_count"),
    ("gpu bool", sft(gpu_count=True), "gpu_count"),
    ("name long", sft(display_name="x" * 201), "display_name"),
    ("name int", sft(display_name=5), "display_name"),
    ("sft no dataset", sft(fireworks_payload={"baseModel": "m"}), "fireworks_payload.dataset"),
    ("sft no model", sft(fireworks_payload={"dataset": "d"}), "fireworks_payload.baseModel"),
    (
        "sft both models",
        sft(fireworks_payload={"dataset": "d", "baseModel": "m", "warmStartFrom": "w"}),
        "fireworks_payload.warmStartFrom",
    ),
    (
        "dataset not string",
        sft(fireworks_payload={"dataset": 3, "baseModel": "m"}),
        "fireworks_payload.dataset",
    ),
    (
        "dpo no training config",
        {"kind": "DPO", "fireworks_payload": {"dataset": "d"}},
        "fireworks_payload.trainingConfig",
    ),
    (
        "dpo no model",
        {"kind": "DPO", "fireworks_payload": {"dataset": "d", "trainingConfig": {}}},
        "fireworks_payload.trainingConfig.baseModel",
    ),
    (
        "rft no evaluator",
        {"kind": "RFT", "fireworks_payload": {"dataset": "d"}},
        "fireworks_payload.evaluator",
    ),
    (
        "epochs not int",
        sft(fireworks_payload={**SFT_PAYLOAD, "epochs": "3"}),
        "fireworks_payload.epochs",
    ),
]


@pytest.mark.parametrize(("name", "body", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_bad_body_is_400_and_creates_nothing(
    app_client: Client, users: Users, pool: asyncpg.Pool, name: str, body: Any, field: str | None
) -> None:
    before = await count_events(pool)
    headers = {**bearer(users.alice), "Content-Type": "application/json"}
    if isinstance(body, bytes):
        r = await app_client.post("/jobs", content=body, headers=headers)
    else:
        r = await app_client.post("/jobs", json=body, headers=headers)
    error = assert_error(r, 400, "VALIDATION_ERROR")
    if field is not None:
        assert field in [d.get("field") for d in error["details"]], error
    assert await count_events(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 0


async def test_dpo_top_level_warm_start_is_enough(app_client: Client, users: Users) -> None:
    body = {"kind": "DPO", "fireworks_payload": {"dataset": "d", "warmStartFrom": "m"}}
    r = await app_client.post("/jobs", json=body, headers=bearer(users.alice))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "sftq_abc"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer sftq_short"},
        {"Authorization": "Bearer sftq_" + "A" * 43},
        {"Authorization": "Bearer not-a-key-at-all"},
    ],
    ids=["missing", "no-scheme", "empty", "basic", "malformed", "unknown", "foreign"],
)
async def test_unauthenticated(app_client: Client, users: Users, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/queue")]:
        r = await app_client.request(method, path, headers=headers, json=sft())
        assert_error(r, 401, "UNAUTHENTICATED")


async def test_bad_body_without_key_is_401(app_client: Client) -> None:
    r = await app_client.post("/jobs", content=b"{nope")
    assert_error(r, 401, "UNAUTHENTICATED")


async def test_members_are_isolated_admin_sees_all(app_client: Client, users: Users) -> None:
    r = await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))
    job_id = r.json()["id"]
    assert_error(
        await app_client.get(f"/jobs/{job_id}", headers=bearer(users.bob)), 404, "NOT_FOUND"
    )
    assert_error(
        await app_client.delete(f"/jobs/{job_id}", headers=bearer(users.bob)), 404, "NOT_FOUND"
    )
    assert (await app_client.get("/jobs", headers=bearer(users.bob))).json() == []
    admin = await app_client.get(f"/jobs/{job_id}", headers=bearer(users.admin))
    assert admin.status_code == 200 and admin.json()["user"] == "alice@example.com"
    listed = await app_client.get("/jobs", headers=bearer(users.admin))
    assert [j["id"] for j in listed.json()] == [job_id]
    by_user = await app_client.get("/jobs?user=bob@example.com", headers=bearer(users.admin))
    assert by_user.json() == []
    forbidden = await app_client.get("/jobs?user=bob@example.com", headers=bearer(users.alice))
    assert_error(forbidden, 403, "FORBIDDEN")


@pytest.mark.parametrize("job_id", ["nope", "123", "00000000-0000-0000-0000-000000000000"])
async def test_unknown_or_bad_id_is_404(app_client: Client, users: Users, job_id: str) -> None:
    assert_error(
        await app_client.get(f"/jobs/{job_id}", headers=bearer(users.alice)), 404, "NOT_FOUND"
    )
    r = await app_client.delete(f"/jobs/{job_id}", headers=bearer(users.alice))
    assert_error(r, 404, "NOT_FOUND")


async def test_idempotent_retry_and_conflict(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    headers = {**bearer(users.alice), "Idempotency-Key": "retry-1"}
    first = await app_client.post("/jobs", json=sft(), headers=headers)
    assert first.status_code == 201
    # the same body with keys in another order and the default spelled out is the same body
    same = {"gpu_count": 4, "fireworks_payload": dict(reversed(SFT_PAYLOAD.items())), "kind": "SFT"}
    again = await app_client.post("/jobs", json=same, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = await app_client.post("/jobs", json=sft(gpu_count=8), headers=headers)
    assert_error(other, 409, "IDEMPOTENCY_CONFLICT")
    # another user may use the same key
    bob = await app_client.post(
        "/jobs", json=sft(), headers={**bearer(users.bob), "Idempotency-Key": "retry-1"}
    )
    assert bob.status_code == 201 and bob.json()["id"] != first.json()["id"]
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 2


async def test_the_recorded_fingerprint_reveals_no_secret(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    """The fingerprint is in the log: it is taken with payload secrets masked, so a short
    secret cannot be found by hashing guesses; a retry differing only in one is the same."""
    headers = {**bearer(users.alice), "Idempotency-Key": "secret-1"}
    payload = {**SFT_PAYLOAD, "wandbConfig": {"apiKey": "1234", "project": "p"}}
    first = await app_client.post("/jobs", json=sft(fireworks_payload=payload), headers=headers)
    assert first.status_code == 201, first.text
    recorded = await pool.fetchval(
        "SELECT data->>'request_fingerprint' FROM events WHERE type = 'job.submitted'"
    )
    body = {"kind": "SFT", "fireworks_payload": payload, "gpu_count": 4, "display_name": None}
    for guess in ("1234", "***"):
        guessed = {
            **body,
            "fireworks_payload": {**payload, "wandbConfig": {"apiKey": guess, "project": "p"}},
        }
        plain = hashlib.sha256(msgspec.json.encode(guessed, order="sorted")).hexdigest()
        assert recorded != plain
    other_secret = {**payload, "wandbConfig": {"apiKey": "5678", "project": "p"}}
    again = await app_client.post(
        "/jobs", json=sft(fireworks_payload=other_secret), headers=headers
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other_project = {**payload, "wandbConfig": {"apiKey": "1234", "project": "q"}}
    conflict = await app_client.post(
        "/jobs", json=sft(fireworks_payload=other_project), headers=headers
    )
    assert_error(conflict, 409, "IDEMPOTENCY_CONFLICT")


async def test_concurrent_idempotent_submits_make_one_job(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    import asyncio  # noqa: PLC0415

    headers = {**bearer(users.alice), "Idempotency-Key": "race"}
    answers = await asyncio.gather(
        *(app_client.post("/jobs", json=sft(), headers=headers) for _ in range(8))
    )
    assert sorted(a.status_code for a in answers).count(201) >= 1
    assert {a.json()["id"] for a in answers if a.status_code in (200, 201)} and all(
        a.status_code in (200, 201) for a in answers
    )
    assert len({a.json()["id"] for a in answers}) == 1
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "caf\u00e9"])
async def test_bad_idempotency_key_is_400(app_client: Client, users: Users, key: str) -> None:
    headers = {**bearer(users.alice), "Idempotency-Key": key}
    try:
        r = await app_client.post("/jobs", json=sft(), headers=headers)
    except UnicodeEncodeError:
        raw = [
            (b"authorization", f"Bearer {users.alice}".encode()),
            (b"idempotency-key", key.encode()),
        ]
        r = await app_client.post("/jobs", json=sft(), headers=raw)
    assert_error(r, 400, "VALIDATION_ERROR")


async def test_pagination_with_link_header(app_client: Client, users: Users) -> None:
    ids = []
    for i in range(5):
        r = await app_client.post(
            "/jobs", json=sft(display_name=f"j{i}"), headers=bearer(users.alice)
        )
        ids.append(r.json()["id"])
    seen: list[str] = []
    url: str | None = "/jobs?limit=2&kind=SFT"
    pages = 0
    while url:
        r = await app_client.get(url, headers=bearer(users.alice))
        assert r.status_code == 200
        seen += [j["id"] for j in r.json()]
        pages += 1
        link = r.headers.get("link")
        url = None
        if link:
            assert link.endswith('>; rel="next"') and "kind=SFT" in link and "limit=2" in link
            url = link[1 : link.index(">")]
    assert pages == 3
    assert seen == list(reversed(ids))  # newest first, each once


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=x", "cursor=%%%", "cursor=bm9wZQ", "state=DONE", "kind=X"],
)
async def test_bad_list_parameters_are_400(app_client: Client, users: Users, query: str) -> None:
    r = await app_client.get(f"/jobs?{query}", headers=bearer(users.alice))
    assert_error(r, 400, "VALIDATION_ERROR")


async def test_state_filter(app_client: Client, users: Users) -> None:
    a = (await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))).json()["id"]
    await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))
    await app_client.delete(f"/jobs/{a}", headers=bearer(users.alice))
    cancelled = await app_client.get("/jobs?state=CANCELLED", headers=bearer(users.alice))
    assert [j["id"] for j in cancelled.json()] == [a]
    queued = await app_client.get("/jobs?state=QUEUED", headers=bearer(users.alice))
    assert len(queued.json()) == 1


async def test_cancel_queued_then_terminal_is_409(app_client: Client, users: Users) -> None:
    job_id = (await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))).json()["id"]
    r = await app_client.delete(f"/jobs/{job_id}", headers=bearer(users.alice))
    assert r.status_code == 200 and r.json() == {"id": job_id, "state": "CANCELLED"}
    again = await app_client.delete(f"/jobs/{job_id}", headers=bearer(users.alice))
    assert_error(again, 409, "INVALID_STATE")
    job = (await app_client.get(f"/jobs/{job_id}", headers=bearer(users.alice))).json()
    assert job["state"] == "CANCELLED" and "queue_position" not in job


async def _start_admission(pool: asyncpg.Pool, job_id: str) -> None:
    reason = AdmissionReason(policy="strict-fifo", quota=8, in_use=0, available=8, queue_position=1)
    command = StartAdmission(
        at=datetime.now(UTC),
        fireworks_job_id=job_id,
        fireworks_job_name=f"accounts/ftq/supervisedFineTuningJobs/{job_id}",
        reason=reason,
    )
    await run_command(pool, JOB, job_id, command, META)


async def test_cancel_progress_with_open_admission_is_202(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    job_id = (await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))).json()["id"]
    await _start_admission(pool, job_id)  # admission open: the loop must finish the cancel
    r = await app_client.delete(f"/jobs/{job_id}", headers=bearer(users.alice))
    assert r.status_code == 202, r.text
    assert r.json() == {"id": job_id, "state": "PROGRESS", "cancel_requested": True}
    job = (await app_client.get(f"/jobs/{job_id}", headers=bearer(users.alice))).json()
    assert job["state"] == "PROGRESS" and job["cancel_requested"] is True


async def test_cancel_progress_carried_out_is_200(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    job_id = (await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))).json()["id"]
    await _start_admission(pool, job_id)
    from events.domain.job_commands import ConfirmAdmission  # noqa: PLC0415

    await run_command(pool, JOB, job_id, ConfirmAdmission(at=datetime.now(UTC)), META)
    r = await app_client.delete(f"/jobs/{job_id}", headers=bearer(users.alice))
    assert r.status_code == 200, r.text
    assert r.json() == {"id": job_id, "state": "CANCELLED"}


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/jobs?user=%00", 400),
        ("/jobs?user=%ED%A0%80", 200),
        ("/jobs?cursor=%ED%A0%80", 400),
        ("/jobs?limit=99999999999999999999999", 400),
        ("/jobs?state=%00", 400),
        ("/jobs/%00", 404),
        ("/jobs/%ED%A0%80", 404),
    ],
)
async def test_odd_urls_never_500(app_client: Client, users: Users, url: str, status: int) -> None:
    r = await app_client.get(url, headers=bearer(users.admin))
    assert r.status_code == status, r.text
    if status >= 400:
        assert set(r.json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind":"SFT","fireworks_payload":{"dataset":"\\ud800","baseModel":"m"}}',
        b"\xff\xfe",
        b'{"kind":"SFT","fireworks_payload":{"dataset":"d","baseModel":"m","n":1e400}}',
        b'{"kind":"SFT","fireworks_payload":{"dataset":"d\\u0000","baseModel":"m"}}',
        b'{"kind":"SFT","fireworks_payload":{"dataset":"d","baseModel":"m","n":'
        + b"[" * 5000
        + b"]" * 5000
        + b"}}",
        b'{"kind":"SFT","fireworks_payload":{"dataset":"d","baseModel":"m","n":'
        + b"[" * 100
        + b"]" * 100
        + b"}}",
        b"",
        b"null",
    ],
    ids=["surrogate", "binary", "huge-number", "nul", "very-deep", "deep", "empty", "null"],
)
async def test_odd_bodies_are_400(
    app_client: Client, users: Users, pool: asyncpg.Pool, raw: bytes
) -> None:
    headers = {**bearer(users.alice), "Content-Type": "application/json"}
    r = await app_client.post("/jobs", content=raw, headers=headers)
    assert_error(r, 400, "VALIDATION_ERROR")
    assert await count_events(pool) == 6  # 3 users x (added, key issued): nothing more


PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics")  # probes and the Prometheus scrape


@pytest.mark.parametrize("key", [None, "sftq_" + "A" * 43])
async def test_every_route_but_the_public_ones_refuses_an_unauthenticated_caller(
    app: Litestar, app_client: Client, key: str | None
) -> None:
    """Walks the app's own route table, so a route added later without authentication is
    caught too (a body that is invalid as well still gets 401: authentication comes first)."""
    headers = {} if key is None else bearer(key)
    checked = 0
    for route in app.routes:
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
        # /ui pages authenticate by session cookie and redirect to the sign-in page:
        # tests/ui/test_sessions.py covers them.
        if route.path in PUBLIC_PATHS or route.path.startswith(("/schema", "/ui")):
            continue
        for method in sorted(getattr(route, "methods", set()) - {"OPTIONS", "HEAD"}):
            body = {"not": "a valid body"} if method in ("POST", "PUT") else None
            r = await app_client.request(method, path, headers=headers, json=body)
            assert r.status_code == 401, (method, route.path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "UNAUTHENTICATED"
            checked += 1
    assert checked >= 20  # the job, admin, queue, capacity and history routes, both prefixes
