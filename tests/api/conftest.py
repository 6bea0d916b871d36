"""The API tier: the real app (create_app) against a fresh migrated database per test and
the in-process Fireworks simulator; the admission loop is off unless a test turns it on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from events.domain.directory_events import Role
from service import directory
from service.app import create_app
from service.settings import Settings

META = {"actor": "test"}
SFT_PAYLOAD: dict[str, Any] = {
    "baseModel": "accounts/fireworks/models/qwen3-14b",
    "dataset": "accounts/trilogy/datasets/sft-v3",
    "epochs": 1,
}
DPO_PAYLOAD: dict[str, Any] = {
    "dataset": "accounts/trilogy/datasets/dpo",
    "lossConfig": {"method": "DPO"},
    "trainingConfig": {"warmStartFrom": "accounts/trilogy/models/sft-model"},
}
RFT_PAYLOAD: dict[str, Any] = {
    "dataset": "accounts/trilogy/datasets/rft",
    "evaluator": "accounts/trilogy/evaluators/math",
    "trainingConfig": {"baseModel": "accounts/fireworks/models/qwen3-14b"},
}


class Users(msgspec.Struct):
    """Keys of three users: an admin and two members."""

    admin: str
    alice: str
    bob: str
    alice_id: str
    bob_id: str


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def sft(**over: Any) -> dict[str, Any]:
    return {"kind": "SFT", "fireworks_payload": dict(SFT_PAYLOAD), **over}


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        fireworks_base_url="simulator",
        fireworks_gpu_quota=8,
        data_dir=tmp_path,
        log_level="warning",
    )


@pytest.fixture
def app(api_settings: Settings) -> Litestar:
    return create_app(api_settings, run_scheduler=False)


@pytest.fixture
async def app_client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as client:
        yield client


async def make_user(pool: asyncpg.Pool, email: str, role: Role = "member") -> tuple[str, str]:
    """(user id, plaintext key) of a new user (the test client runs the app on its own
    event loop, so tests write through their own pool, never the app's)."""
    user = await directory.add_user(pool, email, role, META)
    issued = await directory.issue_key(pool, email, "test", META)
    return user.id, issued.key


@pytest.fixture
async def users(pool: asyncpg.Pool, app_client: AsyncTestClient[Litestar]) -> Users:
    _, admin = await make_user(pool, "root@example.com", "admin")
    alice_id, alice = await make_user(pool, "alice@example.com")
    bob_id, bob = await make_user(pool, "bob@example.com")
    return Users(admin=admin, alice=alice, bob=bob, alice_id=alice_id, bob_id=bob_id)


async def count_events(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM events"))
