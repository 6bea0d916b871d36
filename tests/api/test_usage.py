"""GET /usage, GET /usage/hourly and the per-user figures on GET /admin/users."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from events.domain.job import JOB
from events.domain.job_commands import ConfirmAdmission, ObserveFireworks, StartAdmission, SubmitJob
from events.domain.job_events import AdmissionReason
from service.commands import run_command
from tests.api.conftest import Users, bearer

T0 = datetime(2026, 2, 3, 10, tzinfo=UTC)
REASON = AdmissionReason(policy="strict-fifo", quota=8, in_use=0, available=8, queue_position=1)


async def finished_job(
    pool: asyncpg.Pool, user_id: str, email: str, gpus: int, hours: float, kind: str = "SFT"
) -> str:
    job = str(uuid.uuid4())
    end = T0 + timedelta(hours=hours)
    for command in (
        SubmitJob(
            at=T0, job_id=job, user_id=user_id, user_email=email, kind=kind,  # type: ignore[arg-type]
            display_name=None, gpu_count=gpus, fireworks_payload={"dataset": "d"},
        ),
        StartAdmission(at=T0, fireworks_job_id=job, fireworks_job_name=job, reason=REASON),
        ConfirmAdmission(at=T0, fireworks_state="JOB_STATE_CREATING"),
        ObserveFireworks(
            at=end, fireworks_state="JOB_STATE_COMPLETED", accelerator_seconds=10.0,
            estimated_cost=2.5,
        ),
    ):  # fmt: skip
        await run_command(pool, JOB, job, command, {})
    return job


async def test_members_see_their_own_usage_and_admins_everyones(
    pool: asyncpg.Pool, app_client: AsyncTestClient[Litestar], users: Users
) -> None:
    await finished_job(pool, users.alice_id, "alice@example.com", 4, 2)
    await finished_job(pool, users.bob_id, "bob@example.com", 1, 1, kind="RFT")
    mine = await app_client.get("/usage", headers=bearer(users.alice))
    assert mine.status_code == 200
    assert mine.json() == [
        {
            "group": "alice@example.com",
            "jobs": 1,
            "gpu_seconds": 4 * 7200.0,
            "accelerator_seconds": 10.0,
            "estimated_cost": 2.5,
        }
    ]
    everyone = await app_client.get("/usage?group=kind", headers=bearer(users.admin))
    assert [(r["group"], r["gpu_seconds"]) for r in everyone.json()] == [
        ("RFT", 3600.0),
        ("SFT", 28800.0),
    ]
    windowed = await app_client.get(
        "/usage",
        params={"group": "day", "from": "2026-02-03T11:00:00Z", "to": "2026-02-04"},
        headers=bearer(users.admin),
    )
    assert [(r["group"], r["jobs"], r["gpu_seconds"]) for r in windowed.json()] == [
        ("2026-02-03", 1, 4 * 3600.0)
    ]
    assert windowed.json()[0]["estimated_cost"] == 1.25  # half the job's time: half its cost
    bobs = await app_client.get("/usage", headers=bearer(users.bob))
    assert [r["group"] for r in bobs.json()] == ["bob@example.com"]


async def test_hourly_usage_charts_gpus_in_use(
    pool: asyncpg.Pool, app_client: AsyncTestClient[Litestar], users: Users
) -> None:
    await finished_job(pool, users.alice_id, "alice@example.com", 4, 1.5)
    answer = await app_client.get(
        "/usage/hourly",
        params={"from": "2026-02-03T10:00:00Z", "to": "2026-02-03T13:00:00Z"},
        headers=bearer(users.admin),
    )
    assert answer.status_code == 200
    assert [(b["hour"][:16], b["gpus"]) for b in answer.json()] == [
        ("2026-02-03T10:00", 4.0),
        ("2026-02-03T11:00", 2.0),
        ("2026-02-03T12:00", 0.0),
    ]
    assert (await app_client.get("/usage/hourly", headers=bearer(users.bob))).json()[-1][
        "gpus"
    ] == 0.0


async def test_admin_users_carry_per_user_usage(
    pool: asyncpg.Pool, app_client: AsyncTestClient[Litestar], users: Users
) -> None:
    await finished_job(pool, users.alice_id, "alice@example.com", 2, 3)
    listed = (await app_client.get("/admin/users", headers=bearer(users.admin))).json()
    by_email = {u["email"]: u["usage"] for u in listed}
    assert by_email["alice@example.com"]["gpu_seconds"] == 2 * 3 * 3600.0
    assert by_email["alice@example.com"]["jobs"] == 1
    assert by_email["bob@example.com"] == {
        "jobs": 0, "gpu_seconds": 0.0, "accelerator_seconds": None, "estimated_cost": None
    }  # fmt: skip


async def test_bad_usage_queries_are_400_in_the_error_shape(
    app_client: AsyncTestClient[Litestar], users: Users
) -> None:
    for params in (
        {"group": "team"},
        {"from": "yesterday"},
        {"from": "2026-02-03", "to": "2026-02-01"},
    ):
        answer = await app_client.get("/usage", params=params, headers=bearer(users.alice))
        assert answer.status_code == 400, params
        assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
    too_long = await app_client.get(
        "/usage/hourly", params={"from": "2020-01-01"}, headers=bearer(users.alice)
    )
    assert too_long.status_code == 400
    assert (await app_client.get("/usage")).status_code == 401
