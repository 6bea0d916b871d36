"""The old Supabase job-scheduler's production rules, end to end through the API, the live
admission loop and the Fireworks simulator: FTQ_BIG_JOB_GPUS=8, FTQ_USER_CAP_SMALL=2,
FTQ_USER_CAP_BIG=1, FTQ_BIG_JOB_RESERVE=4, FTQ_POLICY=strict-fifo, 16 GPUs.

  ann: three small jobs (2 GPUs)   -> two admitted, the third held by her small cap
  bob: a big job (8), another (8)  -> the first admitted (16-4 free leaves 4), the second
                                      held by his big cap
  cat: a big job (8), a small (2)  -> the big one does not leave the reserve: skipped (it
                                      blocks nothing), the small one behind it admitted
and the audit finds every admission in keeping with the policy recorded in the log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from events.store.log import Cursor, read_all
from projections.audit import audit
from service.app import create_app
from service.settings import Settings
from tests.api.conftest import bearer, make_user, sft


async def _states(client: AsyncTestClient[Any], key: str) -> dict[str, dict[str, Any]]:
    jobs = (await client.get("/jobs", headers=bearer(key))).json()
    return {j["display_name"]: j for j in jobs}


async def test_the_old_services_rules_through_the_api_and_the_simulator(
    db_url: str, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    settings = Settings(
        database_url=db_url,
        fireworks_base_url="simulator",
        fireworks_gpu_quota=16,
        data_dir=tmp_path,
        log_level="warning",
        reconcile_seconds=60,
        big_job_gpus=8,
        user_cap_small=2,
        user_cap_big=1,
        big_job_reserve=4,
    )
    _, ann = await make_user(pool, "ann@old.test")
    _, bob = await make_user(pool, "bob@old.test")
    _, cat = await make_user(pool, "cat@old.test")
    _, admin = await make_user(pool, "root@old.test", "admin")
    app = create_app(settings, run_scheduler=True)
    async with AsyncTestClient(app=app) as client:
        # one at a time, each admitted (or not) before the next: the old service's order
        plan = [
            (ann, "ann-1", 2), (ann, "ann-2", 2), (ann, "ann-3", 2),
            (bob, "bob-big-1", 8), (bob, "bob-big-2", 8),
            (cat, "cat-big", 8), (cat, "cat-small", 2),
        ]  # fmt: skip
        for key, name, gpus in plan:
            r = await client.post(
                "/jobs", json=sft(gpu_count=gpus, display_name=name), headers=bearer(key)
            )
            assert r.status_code == 201, r.text
            await asyncio.sleep(0.3)
        expected = {
            "ann-1": "PROGRESS", "ann-2": "PROGRESS", "ann-3": "QUEUED",
            "bob-big-1": "PROGRESS", "bob-big-2": "QUEUED",
            "cat-big": "QUEUED", "cat-small": "PROGRESS",
        }  # fmt: skip
        wanted = {
            "ann-3": "you already have 2 small jobs in PROGRESS (cap 2)",
            "bob-big-2": "you already have 1 big job in PROGRESS (cap 1)",
            # 16 - 4 (ann) - 8 (bob) - 2 (cat-small) = 2 free: cat-big does not fit at all
            "cat-big": "needs 8 GPUs, 2 free; big jobs must leave 4",
        }
        reasons: dict[str, Any] = {}
        try:
            async with asyncio.timeout(20):
                while True:  # states at once; reasons once a plan made after them serves
                    seen = {**await _states(client, ann), **await _states(client, bob),
                            **await _states(client, cat)}  # fmt: skip
                    reasons = {
                        n: j.get("pending_reason")
                        for n, j in seen.items()
                        if j["state"] == "QUEUED"
                    }
                    if {n: j["state"] for n, j in seen.items()} == expected and reasons == wanted:
                        break
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"{reasons} != {wanted}") from None
        view = (await client.get("/admin/scheduler", headers=bearer(admin))).json()
        assert view["recorded_policy"] == "strict-fifo"
        assert view["recorded_policy_settings"]["big_job_reserve"] == 4
    rows = await _log(pool)
    assert "scheduler.policy_in_force" in {r.type for r in rows}
    assert audit(rows, default_cap=1) == []


async def _log(pool: asyncpg.Pool) -> list[Any]:
    """The whole log, as `ftq audit` reads it (gap-free: it holds back events while an older
    transaction anywhere on the server is open, so wait until it returns all of them)."""
    async with pool.acquire() as conn, asyncio.timeout(60):
        while True:
            rows = await read_all(conn, Cursor.START, 100_000)
            if len(rows) == await conn.fetchval("SELECT count(*) FROM events"):
                return rows
            await asyncio.sleep(0.1)
