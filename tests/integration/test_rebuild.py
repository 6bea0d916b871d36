"""The projections equal a rebuild from the log after a random workload through the real
store; a tampered projection is caught and a rebuild repairs it."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.domain.job import JOB
from events.domain.job_commands import (
    ConfirmAdmission,
    ConfirmCancelled,
    FireworksJobGone,
    JobCommand,
    ObserveFireworks,
    RejectAdmission,
    RequestCancel,
    ReturnToQueue,
    StartAdmission,
    SubmitJob,
)
from events.domain.job_events import AdmissionReason
from events.domain.rejections import CommandRejected
from projections.rebuild import rebuild, verify
from service.commands import run_command
from service.directory import add_user, issue_key, revoke_key, set_cap

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REASON = AdmissionReason(policy="strict-fifo", quota=8, in_use=0, available=8, queue_position=1)
STATES = ["JOB_STATE_RUNNING", "JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_PAUSED"]


def command(kind: str, n: int, job_id: str, user: str, gpus: int) -> JobCommand:
    at = T0 + timedelta(seconds=n)
    match kind:
        case "submit":
            return SubmitJob(
                at=at, job_id=job_id, user_id=user, user_email=f"{user[:8]}@x.io", kind="RFT",
                display_name=None, gpu_count=gpus, fireworks_payload={"dataset": "d"},
            )  # fmt: skip
        case "start":
            return StartAdmission(
                at=at, fireworks_job_id=job_id, fireworks_job_name=job_id, reason=REASON
            )
        case "confirm":
            return ConfirmAdmission(at=at, fireworks_state="JOB_STATE_CREATING")
        case "requeue":
            return ReturnToQueue(at=at, message="quota")
        case "reject":
            return RejectAdmission(at=at, message="bad")
        case "gone":
            return FireworksJobGone(at=at)
        case "cancel":
            return RequestCancel(at=at, by="someone")
        case "cancelled":
            return ConfirmCancelled(at=at)
        case _:
            return ObserveFireworks(at=at, fireworks_state=STATES[n % len(STATES)], progress=n)


KINDS = ["submit", "start", "confirm", "requeue", "reject", "gone", "cancel", "cancelled", "see"]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(0, 5), st.integers(0, 2), st.integers(1, 8)),
        min_size=5,
        max_size=60,
    )
)
async def test_projection_equals_rebuild_after_random_workload(
    pool: asyncpg.Pool, steps: list[tuple[str, int, int, int]]
) -> None:
    jobs = [str(uuid.uuid4()) for _ in range(6)]
    users = [str(uuid.uuid4()) for _ in range(3)]
    for n, (kind, job, user, gpus) in enumerate(steps):
        with contextlib.suppress(CommandRejected):
            await run_command(
                pool, JOB, jobs[job], command(kind, n, jobs[job], users[user], gpus), {}
            )
    async with pool.acquire() as conn:
        assert await verify(conn) == []


async def test_directory_and_jobs_verify_then_tamper_is_caught_and_repaired(
    pool: asyncpg.Pool,
) -> None:
    await add_user(pool, "a@x.io", "admin", {})
    await set_cap(pool, "a@x.io", 3, {})
    key = await issue_key(pool, "a@x.io", "l", {})
    await revoke_key(pool, key.id, {})
    job = str(uuid.uuid4())
    await run_command(pool, JOB, job, command("submit", 0, job, str(uuid.uuid4()), 2), {})
    await run_command(pool, JOB, job, command("start", 1, job, "", 2), {})
    async with pool.acquire() as conn:
        assert await verify(conn) == []
        await conn.execute("UPDATE jobs SET state = 'SUCCESS' WHERE id = $1", job)
        await conn.execute("UPDATE user_load SET progress_gpus = 7")
        differences = await verify(conn)
        assert any(
            d.startswith(f"jobs id={job}: live row") and "state=SUCCESS" in d for d in differences
        )
        assert any(d.startswith("user_load") for d in differences)
        assert await rebuild(conn) == 6
        assert await verify(conn) == []
        assert await conn.fetchval("SELECT state FROM jobs WHERE id = $1", job) == "PROGRESS"
