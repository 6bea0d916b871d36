"""Access log lines (no secrets, no bodies), request ids in the recorded metadata, the
redacting log processor, and the history routes mounted under both prefixes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import cast

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import Receive, Scope, Send

from service.app import create_app
from service.logging import redact_event
from service.settings import Settings
from tests.api.conftest import SFT_PAYLOAD, Users, bearer, make_user, sft
from tests.api.test_jobs import assert_error

Client = AsyncTestClient[Litestar]
SECRET = "wandb-secret-in-payload"


async def test_access_log_has_no_secrets(
    api_settings: Settings, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = msgspec.structs.replace(api_settings, log_level="info")
    _, key = await make_user(pool, "logged@example.com")
    payload = {**SFT_PAYLOAD, "wandbConfig": {"apiKey": SECRET}}
    async with AsyncTestClient(app=create_app(settings, run_scheduler=False)) as client:
        made = await client.post(
            "/jobs",
            json=sft(fireworks_payload=payload),
            headers={**bearer(key), "X-Request-ID": "req-42"},
        )
        job_id = made.json()["id"]
        await client.get(f"/jobs/{job_id}", headers=bearer(key))
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "http.request"]
    assert {"method", "route", "status", "duration_ms", "request_id"} <= set(access[0])
    assert access[0]["route"] == "/jobs" and access[0]["request_id"] == "req-42"
    assert any(line.get("job_id") == job_id for line in access)
    assert key not in out and SECRET not in out and "fireworks_payload" not in out
    metadata = await pool.fetchval(
        "SELECT metadata FROM events WHERE type = 'job.submitted' AND stream_id = $1", job_id
    )
    assert json.loads(metadata) == {"actor": "logged@example.com", "request_id": "req-42"}


def test_log_processor_redacts() -> None:
    event = {"event": "x", "token": "t", "nested": {"password": "p", "ok": 1}}
    assert redact_event(None, "info", event) == {
        "event": "x",
        "token": "***",
        "nested": {"password": "***", "ok": 1},
    }


@pytest.mark.parametrize("prefix", ["", "/functions/v1/jobs-api"])
async def test_history_routes_mounted(
    app_client: Client, users: Users, prefix: str, tmp_path: Path
) -> None:
    job_id = (await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))).json()["id"]
    mine = await app_client.get(f"{prefix}/jobs/{job_id}/events", headers=bearer(users.alice))
    assert mine.status_code == 200, mine.text
    assert [e["type"] for e in mine.json()] == ["job.submitted"]
    other = await app_client.get(f"{prefix}/jobs/{job_id}/events", headers=bearer(users.bob))
    assert_error(other, 404, "NOT_FOUND")
    assert_error(await app_client.get(f"{prefix}/jobs/{job_id}/events"), 401, "UNAUTHENTICATED")


async def test_a_client_gone_before_its_body_is_read_is_not_an_internal_error(
    api_settings: Settings, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = msgspec.structs.replace(api_settings, log_level="info")
    _, key = await make_user(pool, "leaver@example.com")
    app = create_app(settings, run_scheduler=False)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/jobs",
        "raw_path": b"/jobs",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}  # what uvicorn answers once the socket is closed

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async with AsyncTestClient(app=app) as client:  # the app runs on the client's portal loop
        asgi = (cast(Scope, scope), cast(Receive, receive), cast(Send, send))
        await asyncio.to_thread(lambda: client.blocking_portal.call(app, *asgi))
    logged = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    events = {line["event"]: line for line in logged}
    assert "http.internal_error" not in events and "http.unexpected_exception" not in events
    assert events["http.client_disconnected"]["level"] == "info"
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'job.submitted'") == 0
