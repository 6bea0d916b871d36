"""Admin routes, the queue, capacity, health, readiness, metrics, body limit, redaction,
request ids, the OpenAPI document and the legacy path of the old Supabase clients."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings, SettingsError
from tests.api.conftest import SFT_PAYLOAD, Users, bearer, count_events, sft
from tests.api.test_jobs import assert_error

Client = AsyncTestClient[Litestar]
SECRET = "wandb-secret-value-123"


async def test_admin_issues_and_revokes_keys(app_client: Client, users: Users) -> None:
    admin = bearer(users.admin)
    made = await app_client.post("/admin/users", json={"email": "Carol@Example.com"}, headers=admin)
    assert made.status_code == 201, made.text
    carol = made.json()
    assert carol["email"] == "carol@example.com" and carol["role"] == "member"
    dup = await app_client.post("/admin/users", json={"email": "carol@example.com"}, headers=admin)
    assert_error(dup, 409, "CONFLICT")
    issued = await app_client.post(
        f"/admin/users/{carol['id']}/keys", json={"label": "ci"}, headers=admin
    )
    assert issued.status_code == 201 and set(issued.json()) == {"id", "key"}
    key = issued.json()["key"]
    assert key.startswith("sftq_")
    assert (await app_client.get("/jobs", headers=bearer(key))).status_code == 200
    revoked = await app_client.delete(f"/admin/keys/{issued.json()['id']}", headers=admin)
    assert revoked.status_code == 200
    assert_error(await app_client.get("/jobs", headers=bearer(key)), 401, "UNAUTHENTICATED")
    no_body = await app_client.post(f"/admin/users/{carol['id']}/keys", headers=admin)
    assert no_body.status_code == 201
    listed = await app_client.get("/admin/users", headers=admin)
    assert "carol@example.com" in [u["email"] for u in listed.json()]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/admin/users", {"email": "x@example.com"}),
        ("GET", "/admin/users", None),
        ("POST", "/admin/users/00000000-0000-0000-0000-000000000000/keys", {}),
        ("PUT", "/admin/users/00000000-0000-0000-0000-000000000000/cap", {"cap": 2}),
        ("DELETE", "/admin/keys/00000000-0000-0000-0000-000000000000", None),
        ("GET", "/admin/scheduler", None),
        ("POST", "/admin/scheduler/pause", None),
        ("POST", "/admin/scheduler/resume", None),
    ],
)
async def test_admin_routes_forbid_members(
    app_client: Client, users: Users, method: str, path: str, body: Any
) -> None:
    r = await app_client.request(method, path, json=body, headers=bearer(users.alice))
    assert_error(r, 403, "FORBIDDEN")
    assert_error(await app_client.request(method, path, json=body), 401, "UNAUTHENTICATED")


async def test_admin_errors(app_client: Client, users: Users) -> None:
    admin = bearer(users.admin)
    unknown = "00000000-0000-0000-0000-000000000000"
    r = await app_client.post(f"/admin/users/{unknown}/keys", json={}, headers=admin)
    assert_error(r, 404, "NOT_FOUND")
    assert_error(await app_client.delete(f"/admin/keys/{unknown}", headers=admin), 404, "NOT_FOUND")
    assert_error(await app_client.delete("/admin/keys/nope", headers=admin), 404, "NOT_FOUND")
    bad = await app_client.post("/admin/users", json={"email": "no-at"}, headers=admin)
    assert_error(bad, 400, "VALIDATION_ERROR")
    role = await app_client.post(
        "/admin/users", json={"email": "a@b.c", "role": "root"}, headers=admin
    )
    assert_error(role, 400, "VALIDATION_ERROR")
    cap = await app_client.put(f"/admin/users/{users.bob_id}/cap", json={"cap": "2"}, headers=admin)
    assert_error(cap, 400, "VALIDATION_ERROR")


async def test_cap_and_scheduler_pause_are_recorded(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    admin = bearer(users.admin)
    r = await app_client.put(f"/admin/users/{users.bob_id}/cap", json={"cap": 3}, headers=admin)
    assert r.status_code == 200 and r.json()["cap"] == 3
    by_email = await app_client.put(
        "/admin/users/Bob@example.com/cap", json={"cap": 2}, headers=admin
    )  # the email, as `ftq users cap` takes it
    assert by_email.status_code == 200, by_email.text
    assert (by_email.json()["id"], by_email.json()["cap"]) == (users.bob_id, 2)
    nobody = await app_client.put("/admin/users/x@example.com/cap", json={"cap": 2}, headers=admin)
    assert_error(nobody, 404, "NOT_FOUND")
    status = await app_client.get("/admin/scheduler", headers=admin)
    assert status.json()["paused"] is False and status.json()["leader"] is False
    paused = await app_client.post(
        "/admin/scheduler/pause", json={"reason": "maint"}, headers=admin
    )
    assert paused.status_code == 200 and paused.json()["paused"] is True
    shown = (await app_client.get("/admin/scheduler", headers=admin)).json()
    assert (shown["pause_reason"], shown["changed_by"]) == ("maint", "root@example.com"), shown
    await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))
    queue = await app_client.get("/queue", headers=bearer(users.alice))
    assert queue.json()[0]["pending_reason"] == "admission paused"
    resumed = await app_client.post("/admin/scheduler/resume", headers=admin)
    assert resumed.json()["paused"] is False and resumed.json().get("pause_reason") is None
    types = [r[0] for r in await pool.fetch("SELECT type FROM events ORDER BY position")]
    assert "scheduler.paused" in types and "scheduler.resumed" in types
    assert "user.cap_set" in types


async def test_queue_hides_other_users_payload_and_email(app_client: Client, users: Users) -> None:
    a = (await app_client.post("/jobs", json=sft(gpu_count=8), headers=bearer(users.alice))).json()
    b = (await app_client.post("/jobs", json=sft(gpu_count=8), headers=bearer(users.bob))).json()
    seen = (await app_client.get("/queue", headers=bearer(users.bob))).json()
    assert [e["id"] for e in seen] == [a["id"], b["id"]]
    assert [e["queue_position"] for e in seen] == [1, 2]
    assert seen[0]["user"] is None and seen[0]["fireworks_payload"] is None and not seen[0]["mine"]
    assert seen[1]["user"] == "bob@example.com" and seen[1]["fireworks_payload"] == SFT_PAYLOAD
    assert seen[0]["pending_reason"] == "next to be admitted"  # quota 8: a fits, b does not
    assert seen[1]["pending_reason"] == "needs 8 GPUs, 0 free"
    c = (await app_client.post("/jobs", json=sft(gpu_count=1), headers=bearer(users.admin))).json()
    behind = (await app_client.get("/queue", headers=bearer(users.admin))).json()
    assert behind[2]["id"] == c["id"] and behind[2]["pending_reason"] == f"behind job {b['id']}"
    admin = (await app_client.get("/queue", headers=bearer(users.admin))).json()
    assert admin[0]["user"] == "alice@example.com"


async def test_capacity(app_client: Client, users: Users) -> None:
    r = await app_client.get("/capacity", headers=bearer(users.alice))
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"quota", "in_use", "available", "source", "observed_at"} <= set(body)
    assert body["source"] in ("fireworks-quotas", "config") and body["quota"] == 8


async def test_health_ready_and_not_migrated(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    assert (await app_client.get("/healthz")).json() == {"status": "ok"}
    assert (await app_client.get("/readyz")).status_code == 200
    await pool.execute("DELETE FROM schema_migrations WHERE component = 'projections'")
    assert_error(await app_client.get("/readyz"), 503, "UNAVAILABLE")


METRIC_NAMES = [
    "ftq_http_requests_total", "ftq_http_request_seconds", "ftq_queue_depth", "ftq_gpus_quota",
    "ftq_gpus_in_use", "ftq_gpus_available", "ftq_jobs_in_progress", "ftq_admissions_total",
    "ftq_fireworks_errors_total", "ftq_tick_seconds", "ftq_stream_clients", "ftq_is_leader",
    "ftq_scheduler_paused", "ftq_jobs_finished_total",
]  # fmt: skip


async def test_metrics(app_client: Client, users: Users) -> None:
    await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))
    some = (await app_client.get("/jobs", headers=bearer(users.alice))).json()[0]["id"]
    await app_client.get(f"/jobs/{some}", headers=bearer(users.alice))
    r = await app_client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in r.text or f"# TYPE {name.removesuffix('_total')} " in r.text
    assert "ftq_queue_depth 1.0" in r.text
    assert 'route="/jobs/{id}"' in r.text and some not in r.text


async def test_body_over_limit_is_413(app_client: Client, users: Users, pool: asyncpg.Pool) -> None:
    before = await count_events(pool)
    big = sft(fireworks_payload={**SFT_PAYLOAD, "pad": "x" * (1024 * 1024)})
    r = await app_client.post("/jobs", json=big, headers=bearer(users.alice))
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert await count_events(pool) == before


async def test_secrets_redacted_in_responses_and_sealed_in_log(
    app_client: Client, users: Users, pool: asyncpg.Pool
) -> None:
    payload = {
        **SFT_PAYLOAD,
        "wandbConfig": {"apiKey": SECRET, "project": "p"},
        "awsS3Config": {"credentialsSecret": SECRET, "bucket": "b"},
        "azureBlobStorageConfig": {"sasToken": SECRET, "connectionString": SECRET},
        "extra": {"client_secret": SECRET, "Auth-Token": SECRET},
    }
    r = await app_client.post(
        "/jobs", json=sft(fireworks_payload=payload), headers=bearer(users.alice)
    )
    assert r.status_code == 201
    job_id = r.json()["id"]
    answers = [
        r,
        await app_client.get(f"/jobs/{job_id}", headers=bearer(users.alice)),
        await app_client.get("/jobs", headers=bearer(users.alice)),
        await app_client.get("/queue", headers=bearer(users.alice)),
        await app_client.get(f"/functions/v1/jobs-api/jobs/{job_id}", headers=bearer(users.alice)),
    ]
    for answer in answers:
        assert SECRET not in answer.text
    shown = answers[1].json()["fireworks_payload"]
    assert shown["wandbConfig"] == {"apiKey": "***", "project": "p"}
    assert shown["awsS3Config"] == {"credentialsSecret": "***", "bucket": "b"}
    assert shown["azureBlobStorageConfig"] == {"sasToken": "***", "connectionString": "***"}
    # In the log the secrets are sealed (issue 20); the admission's vault opens them.
    data = await pool.fetchval("SELECT data FROM events WHERE type = 'job.submitted'")
    assert SECRET not in data
    stored = json.loads(data)["fireworks_payload"]
    assert stored["wandbConfig"]["apiKey"]["$ftq_enc"] == "v1"
    vault = app_client.app.state.runtime.vault
    assert (await vault.open(pool, job_id, stored))["wandbConfig"]["apiKey"] == SECRET


async def test_request_id_echoed_and_errors_shaped(app_client: Client) -> None:
    r = await app_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    weird = await app_client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert weird.headers["x-request-id"] != "bad id with spaces"
    assert_error(await app_client.get("/no/such/route"), 404, "NOT_FOUND")
    r = await app_client.patch("/healthz")
    assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_openapi_lists_every_route(app_client: Client) -> None:
    r = await app_client.get("/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    wanted = {
        "/jobs": {"get", "post"},
        "/jobs/{id}": {"get", "delete"},
        "/jobs/{id}/events": {"get"},
        "/jobs/{id}/events/stream": {"get"},
        "/events/stream": {"get"},
        "/queue": {"get"},
        "/capacity": {"get"},
        "/healthz": {"get"},
        "/readyz": {"get"},
        "/metrics": {"get"},
        "/admin/users": {"post"},
        "/admin/users/{user_id}/keys": {"post"},
        "/admin/keys/{key_id}": {"delete"},
        "/admin/scheduler": {"get"},
        "/admin/scheduler/pause": {"post"},
        "/admin/scheduler/resume": {"post"},
    }
    for path, methods in wanted.items():
        assert path in paths, path
        assert methods <= set(paths[path]), path
    post = paths["/jobs"]["post"]
    assert {"200", "201", "400", "401", "409", "413"} <= set(post["responses"])
    # The compatibility alias is listed once, as an alias, not each of its routes again.
    assert not [p for p in paths if p.startswith("/functions/v1/jobs-api")]
    assert r.json()["info"]["description"].count("`/functions/v1/jobs-api`") == 1
    # The live streams say what they stream.
    streamed = {
        p: set(paths[p]["get"]["responses"]["200"]["content"])
        for p in ("/jobs/{id}/events/stream", "/events/stream")
    }
    assert streamed == {
        "/jobs/{id}/events/stream": {"text/event-stream"},
        "/events/stream": {"text/event-stream", "application/x-ndjson"},
    }
    assert (await app_client.get("/schema/swagger")).status_code == 200
    assert (await app_client.get("/schema/redoc")).status_code == 200


async def test_legacy_client_calls(app_client: Client, users: Users) -> None:
    """The exact calls of the old service's examples/enqueue.py and enqueue_*.sh."""
    base = "/functions/v1/jobs-api"
    headers = {**bearer(users.alice), "Content-Type": "application/json"}
    body = {
        "kind": "SFT",
        "display_name": "qwen3-14b sft demo",
        "gpu_count": 4,
        "fireworks_payload": {**SFT_PAYLOAD, "displayName": "qwen3-14b sft demo"},
    }
    made = await app_client.post(f"{base}/jobs", content=json.dumps(body), headers=headers)
    assert made.status_code == 201
    job = made.json()
    assert {"id", "kind", "state", "created_at"} <= set(job) and job["state"] == "QUEUED"
    with_type = await app_client.post(
        f"{base}/jobs", json={**body, "gpu_type": "h200"}, headers=headers
    )
    assert with_type.status_code == 201
    listed = await app_client.get(f"{base}/jobs?state=QUEUED", headers=headers)
    assert isinstance(listed.json(), list) and job["id"] in [j["id"] for j in listed.json()]
    one = await app_client.get(f"{base}/jobs/{job['id']}", headers=headers)
    assert one.json()["id"] == job["id"]
    cancelled = await app_client.delete(f"{base}/jobs/{job['id']}", headers=headers)
    assert cancelled.json() == {"id": job["id"], "state": "CANCELLED"}
    assert_error(await app_client.get(f"{base}/jobs"), 401, "UNAUTHENTICATED")


def test_production_start_without_key_is_refused(api_settings: Settings) -> None:
    real = msgspec.structs.replace(
        api_settings, fireworks_base_url="https://api.fireworks.ai", fireworks_api_key=None
    )
    with pytest.raises(SettingsError, match="FIREWORKS_API_KEY"):
        create_app(real)


async def test_options_allow_names_every_method_of_the_path(
    app_client: Client, users: Users
) -> None:
    """Regression (issue 13 item 16): OPTIONS /jobs/{id} answered `Allow: GET, OPTIONS`."""
    alice = bearer(users.alice)
    some = "01a23ab1-106b-77f5-906b-baf0e414ed09"
    for path, allowed in [
        (f"/jobs/{some}", "DELETE, GET, OPTIONS"),
        ("/jobs", "GET, OPTIONS, POST"),
        (f"/functions/v1/jobs-api/jobs/{some}", "DELETE, GET, OPTIONS"),
    ]:
        r = await app_client.options(path, headers=alice)
        assert (r.status_code, r.headers.get("allow")) == (204, allowed), path
