"""POST/GET/DELETE /webhooks and POST /webhooks/{id}/enable: who may follow what, the secret
shown once and never again, refused URLs and types, and what the log records."""

from __future__ import annotations

import base64
from pathlib import Path

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.secrets.keys import keyring_of
from service.settings import Settings
from service.webhooks.sealing import unseal
from tests.api.conftest import Users, bearer, count_events

SECRET_KEY = base64.b64encode(bytes(range(32))).decode()
HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        fireworks_base_url="simulator",
        fireworks_gpu_quota=8,
        data_dir=tmp_path,
        log_level="warning",
        secret_key=SECRET_KEY,
        webhook_allow_private=True,
    )


async def test_subscribe_list_delete(
    app_client: AsyncTestClient[Litestar], users: Users, pool: asyncpg.Pool
) -> None:
    alice = bearer(users.alice)
    created = await app_client.post("/webhooks", json={"url": HOOK}, headers=alice)
    assert created.status_code == 201, created.text
    body = created.json()
    secret, hook = body["secret"], body["webhook"]
    assert secret.startswith("whsec_") and len(secret) > 30
    assert hook["types"] == sorted(
        ["job.cancelled", "job.dependency_failed", "job.failed", "job.rejected", "job.succeeded"]
    )
    assert (
        hook["scope"] == "own" and hook["state"] == "active" and hook["owner_id"] == users.alice_id
    )

    listed = await app_client.get("/webhooks", headers=alice)
    assert [h["id"] for h in listed.json()] == [hook["id"]]
    assert secret not in listed.text
    assert (await app_client.get("/webhooks", headers=bearer(users.bob))).json() == []
    assert len((await app_client.get("/webhooks", headers=bearer(users.admin))).json()) == 1
    # The secret is nowhere in the log, and the sealed copy is not the secret.
    logged = await pool.fetchval("SELECT string_agg(data::text, ' ') FROM events")
    assert secret not in logged and hook["id"] in logged
    sealed = await pool.fetchval("SELECT sealed_secret FROM webhooks")
    assert secret.encode() not in sealed

    other = await app_client.delete(f"/webhooks/{hook['id']}", headers=bearer(users.bob))
    assert other.status_code == 404 and other.json()["error"]["code"] == "NOT_FOUND"
    gone = await app_client.delete(f"/webhooks/{hook['id']}", headers=alice)
    assert gone.status_code == 204
    assert (await app_client.get("/webhooks", headers=alice)).json() == []
    types = await pool.fetch(
        "SELECT type FROM events WHERE stream_id = $1", f"webhook:{hook['id']}"
    )
    assert [r[0] for r in types] == ["webhook.subscribed", "webhook.deleted"]


async def test_a_given_secret_is_kept_and_admins_may_follow_others(
    app_client: AsyncTestClient[Litestar], users: Users
) -> None:
    given = {"url": HOOK, "secret": "my-own-secret-0123456789", "types": ["job.submitted"]}
    mine = await app_client.post("/webhooks", json=given, headers=bearer(users.alice))
    assert mine.status_code == 201 and mine.json()["secret"] == given["secret"]
    for extra in ({"all": True}, {"user": "bob@example.com"}):
        refused = await app_client.post(
            "/webhooks", json={"url": HOOK, **extra}, headers=bearer(users.alice)
        )
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
    admin = bearer(users.admin)
    everyone = await app_client.post("/webhooks", json={"url": HOOK, "all": True}, headers=admin)
    assert everyone.status_code == 201 and everyone.json()["webhook"]["scope"] == "all"
    bob = await app_client.post(
        "/webhooks", json={"url": HOOK, "user": "bob@example.com"}, headers=admin
    )
    assert bob.status_code == 201
    assert (
        bob.json()["webhook"]["scope"] == "user"
        and bob.json()["webhook"]["user_id"] == users.bob_id
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "http://user:pw@example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": HOOK, "types": ["job.exploded"]}, "types"),
        ({"url": HOOK, "types": []}, "types"),
        ({"url": HOOK, "secret": "short"}, "secret"),
        ({"url": HOOK, "colour": "blue"}, "colour"),
        ({"url": 5}, "url"),
    ],
)
async def test_bad_subscriptions_are_refused_and_change_nothing(
    app_client: AsyncTestClient[Litestar],
    users: Users,
    pool: asyncpg.Pool,
    body: object,
    field: str,
) -> None:
    before = await count_events(pool)
    refused = await app_client.post("/webhooks", json=body, headers=bearer(users.alice))
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in msgspec.json.encode(error).decode()
    assert await count_events(pool) == before


def targets_checked_app(db_url: str, tmp_path: Path) -> Litestar:
    """The app with its default `FTQ_WEBHOOK_ALLOW_PRIVATE` (false): targets are checked."""
    settings = Settings(
        database_url=db_url, fireworks_base_url="simulator", data_dir=tmp_path,
        log_level="warning", secret_key=SECRET_KEY,
    )  # fmt: skip
    return create_app(settings, run_scheduler=False)


async def test_private_targets_are_refused_unless_allowed(
    db_url: str, tmp_path: Path, users: Users
) -> None:
    async with AsyncTestClient(app=targets_checked_app(db_url, tmp_path)) as client:
        for url in (
            "http://127.0.0.1:8080/x",
            "http://10.1.2.3/x",
            "http://[::1]/x",
            "http://localhost/x",
        ):
            refused = await client.post("/webhooks", json={"url": url}, headers=bearer(users.alice))
            assert refused.status_code == 400, url
            assert "address" in refused.json()["error"]["message"], refused.text


@pytest.mark.parametrize("url", ["http://a..b/x", f"http://{'a' * 64}.example/x"])
async def test_host_names_the_resolver_cannot_encode_are_400(
    db_url: str, tmp_path: Path, users: Users, url: str
) -> None:
    """An empty or over-long label makes the resolver raise UnicodeError (it was a 500)."""
    async with AsyncTestClient(app=targets_checked_app(db_url, tmp_path)) as client:
        refused = await client.post("/webhooks", json={"url": url}, headers=bearer(users.alice))
    assert refused.status_code == 400, refused.text
    assert "does not resolve" in refused.json()["error"]["message"]


async def test_without_a_secret_key_the_data_dirs_key_file_seals_them(
    db_url: str, tmp_path: Path, users: Users, pool: asyncpg.Pool
) -> None:
    settings = Settings(
        database_url=db_url,
        fireworks_base_url="simulator",
        data_dir=tmp_path,
        webhook_allow_private=True,
    )
    async with AsyncTestClient(app=create_app(settings, run_scheduler=False)) as client:
        made = await client.post("/webhooks", json={"url": HOOK}, headers=bearer(users.alice))
    assert made.status_code == 201, made.text
    body = made.json()
    sealed = await pool.fetchval("SELECT sealed_secret FROM webhooks")
    key = keyring_of(settings).current.key  # the key file ftq made in the data directory
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert unseal(key, bytes(sealed), body["webhook"]["id"]) == body["secret"].encode()


async def test_enable_is_for_the_owner_and_resumes_a_failing_one(
    app_client: AsyncTestClient[Litestar], users: Users, pool: asyncpg.Pool
) -> None:
    created = await app_client.post("/webhooks", json={"url": HOOK}, headers=bearer(users.alice))
    hook = created.json()["webhook"]["id"]
    await pool.execute(
        "UPDATE webhooks SET state = 'failing', attempts = 12, last_error = 'HTTP 500'"
    )
    shown = (await app_client.get("/webhooks", headers=bearer(users.alice))).json()[0]
    assert shown["state"] == "failing" and shown["last_error"] == "HTTP 500"
    assert (
        await app_client.post(f"/webhooks/{hook}/enable", headers=bearer(users.bob))
    ).status_code == 404
    enabled = await app_client.post(f"/webhooks/{hook}/enable", headers=bearer(users.alice))
    assert enabled.status_code == 200 and enabled.json()["state"] == "active"
    assert enabled.json()["attempts"] == 0
    assert (
        await app_client.post("/webhooks/nope/enable", headers=bearer(users.alice))
    ).status_code == 404
