"""Projections are written in the same transaction as the append, and agree with the log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from events.domain.job import JOB
from events.domain.job_commands import (
    ConfirmAdmission,
    ObserveFireworks,
    RequestCancel,
    ReturnToQueue,
    StartAdmission,
    SubmitJob,
)
from events.domain.job_events import AdmissionReason
from events.domain.rejections import AlreadyExists, InvalidState
from events.store.errors import StreamVersionConflict
from projections.recorder import load, record
from service.commands import run_command
from service.directory import KeyLookup, add_user, issue_key, revoke_key

NOW = datetime(2026, 11, 23, tzinfo=UTC)
META = {"actor": "test"}
REASON = AdmissionReason(policy="strict-fifo", quota=8, in_use=0, available=8, queue_position=1)


def submit(job_id: str, user_id: str, gpus: int = 4, key: str | None = None) -> SubmitJob:
    return SubmitJob(
        at=NOW,
        job_id=job_id,
        user_id=user_id,
        user_email="a@example.com",
        kind="DPO",
        display_name="x",
        gpu_count=gpus,
        fireworks_payload={"dataset": "d", "wandbConfig": {"apiKey": "secret"}},
        idempotency_key=key,
    )


async def load_row(pool: asyncpg.Pool, job_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def test_job_row_and_user_load_follow_the_log(pool: asyncpg.Pool) -> None:
    user = str(uuid.uuid4())
    job = str(uuid.uuid4())
    await run_command(pool, JOB, job, submit(job, user, gpus=6), META)
    row = await load_row(pool, job)
    assert (row["state"], row["gpu_count"], row["version"]) == ("QUEUED", 6, 1)
    start = StartAdmission(at=NOW, fireworks_job_id=job, fireworks_job_name="n", reason=REASON)
    await run_command(pool, JOB, job, start, META)
    user_load = await pool.fetchrow("SELECT * FROM user_load WHERE user_id = $1", user)
    assert (user_load["progress_count"], user_load["progress_gpus"]) == (1, 6)
    await run_command(pool, JOB, job, ConfirmAdmission(at=NOW, fireworks_state="S"), META)
    await run_command(pool, JOB, job, RequestCancel(at=NOW, by="a"), META)
    row = await load_row(pool, job)
    assert (row["state"], row["cancel_requested_by"], row["fireworks_state"]) == (
        "PROGRESS",
        "a",
        "S",
    )
    async with pool.acquire() as conn:
        state = await load(conn, JOB, job)
    assert state.version == row["version"] == 4


async def test_a_new_stream_that_already_exists_falls_back_to_reading_it(
    pool: asyncpg.Pool,
) -> None:
    """`new_stream` skips the first read; a stream that exists after all makes the append
    conflict, and the next attempt reads it and decides again (here: refused)."""
    job, user = str(uuid.uuid4()), str(uuid.uuid4())
    state, _ = await run_command(pool, JOB, job, submit(job, user), META, new_stream=True)
    assert state.version == 1
    with pytest.raises(AlreadyExists):
        await run_command(pool, JOB, job, submit(job, user, gpus=2), META, new_stream=True)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", job) == 1
    assert (await load_row(pool, job))["gpu_count"] == 4


async def test_refused_command_records_nothing(pool: asyncpg.Pool) -> None:
    job = str(uuid.uuid4())
    await run_command(pool, JOB, job, submit(job, str(uuid.uuid4())), META)
    await run_command(pool, JOB, job, RequestCancel(at=NOW, by="a"), META)
    with pytest.raises(InvalidState):
        await run_command(pool, JOB, job, RequestCancel(at=NOW, by="a"), META)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", job) == 2


async def test_stale_writer_conflicts_and_leaves_no_trace(pool: asyncpg.Pool) -> None:
    job = str(uuid.uuid4())
    await run_command(pool, JOB, job, submit(job, str(uuid.uuid4())), META)
    async with pool.acquire() as conn:
        stale = await load(conn, JOB, job)
        await run_command(pool, JOB, job, RequestCancel(at=NOW, by="a"), META)
        start = StartAdmission(at=NOW, fireworks_job_id=job, fireworks_job_name="n", reason=REASON)
        from events.domain.job import decide  # noqa: PLC0415

        with pytest.raises(StreamVersionConflict):
            await record(conn, JOB, stale, decide(start, stale), META)
    row = await load_row(pool, job)
    assert (row["state"], row["version"]) == ("CANCELLED", 2)
    assert await pool.fetchval("SELECT sum(progress_count) FROM user_load") in (None, 0)


async def test_idempotency_key_is_unique_per_user_and_rolls_back_the_append(
    pool: asyncpg.Pool,
) -> None:
    user = str(uuid.uuid4())
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    await run_command(pool, JOB, first, submit(first, user, key="k1"), META)
    with pytest.raises(asyncpg.UniqueViolationError):
        await run_command(pool, JOB, second, submit(second, user, key="k1"), META)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", second) == 0
    other = str(uuid.uuid4())
    await run_command(pool, JOB, other, submit(other, str(uuid.uuid4()), key="k1"), META)


async def test_keys_authenticate_until_revoked(pool: asyncpg.Pool) -> None:
    user = await add_user(pool, "Ada@Example.com", "admin", META)
    assert user.email == "ada@example.com"
    issued = await issue_key(pool, "ada@example.com", "laptop", META)
    assert issued.key.startswith("sftq_")
    keys = KeyLookup(pool)
    found = await keys.authenticate(issued.key)
    assert found is not None and found.id == user.id and found.role == "admin"
    other = issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")
    assert await keys.authenticate(other) is None
    stored = await pool.fetchval(
        "SELECT count(*) FROM events WHERE data::text LIKE $1", f"%{issued.key}%"
    )
    assert stored == 0
    await revoke_key(pool, issued.id, META)
    assert await keys.authenticate(issued.key) is None
    await keys.close()


async def test_user_load_goes_down_when_a_job_leaves_progress(pool: asyncpg.Pool) -> None:
    """Regression: the CHECK (>= 0) once refused the negative change on PROGRESS -> terminal."""
    user = str(uuid.uuid4())
    jobs = [str(uuid.uuid4()) for _ in range(2)]
    for job in jobs:
        await run_command(pool, JOB, job, submit(job, user, gpus=3), META)
        start = StartAdmission(at=NOW, fireworks_job_id=job, fireworks_job_name="n", reason=REASON)
        await run_command(pool, JOB, job, start, META)
    load = "SELECT progress_count, progress_gpus FROM user_load WHERE user_id = $1"
    assert tuple(await pool.fetchrow(load, user)) == (2, 6)
    await run_command(pool, JOB, jobs[0], ReturnToQueue(at=NOW, message="quota"), META)
    assert tuple(await pool.fetchrow(load, user)) == (1, 3)
    await run_command(pool, JOB, jobs[1], ConfirmAdmission(at=NOW), META)
    done = ObserveFireworks(at=NOW, fireworks_state="JOB_STATE_COMPLETED")
    await run_command(pool, JOB, jobs[1], done, META)
    assert tuple(await pool.fetchrow(load, user)) == (0, 0)
