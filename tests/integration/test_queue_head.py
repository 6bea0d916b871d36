"""An admission pass reads only the head of the queue, and plans exactly what planning over
the whole queue would (checked with tiny chunks, so several reads are needed, each going on
after the last job of the one before, also between jobs created at the same instant)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from events.domain.directory import SCHEDULER, PauseScheduler
from events.domain.directory_events import SCHEDULER_STREAM
from events.domain.job import JOB
from events.domain.job_commands import SubmitJob
from service.admission import queue as queue_module
from service.admission.plan import Load, plan
from service.admission.queue import (
    PlannerInputs,
    load_planner_inputs,
    load_queue,
    plan_admissions,
)
from service.commands import run_command
from service.directory import add_user, set_cap

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("policy", ["strict-fifo", "backfill"])
async def test_chunked_head_plans_like_the_whole_queue(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    monkeypatch.setattr(queue_module, "FIRST_CHUNK", 2)
    rng = random.Random(7)
    users = [str(uuid.uuid4()) for _ in range(6)]
    for n in range(60):
        job = str(uuid.uuid4())
        submit = SubmitJob(
            # n // 3: jobs created at the same instant, which FIFO orders by id
            at=T0 + timedelta(seconds=n // 3), job_id=job, user_id=rng.choice(users),
            user_email="u@x.io", kind="SFT", display_name=None, gpu_count=rng.randint(1, 6),
            fireworks_payload={"dataset": "d"},
        )  # fmt: skip
        await run_command(pool, JOB, job, submit, {})
    async with pool.acquire() as conn:
        whole = await load_queue(conn)
        fifo = "SELECT id::text FROM jobs WHERE state = 'QUEUED' ORDER BY created_at, id"
        expected = [r[0] for r in await conn.fetch(fifo)]
        assert [j.job_id for j in whole] == expected
        assert await load_queue(conn, page=7) == whole  # read in pages, ties between them
        reads = []
        for available in (0, 1, 5, 17, 40, 400):
            for caps in ({}, {users[0]: 0, users[1]: 3}):
                load = Load(progress={users[2]: 1}, caps=caps, default_cap=2)
                head, read = await plan_admissions(conn, load, available, policy=policy)
                full = plan(whole, load, available, policy=policy, explain=False)
                assert [a.job.job_id for a in head.admit] == [a.job.job_id for a in full.admit]
                assert head.available_after == full.available_after
                reads.append(read)
    assert min(reads) < len(whole)  # small headroom: only the head was read
    assert max(reads) == len(whole)  # large headroom: read to the end


async def test_planner_inputs_in_one_read(pool: asyncpg.Pool) -> None:
    """Paused flag, PROGRESS load and caps together: users with load only, a cap only or
    both, and the paused flag even when no user has either."""
    async with pool.acquire() as conn:
        empty = await load_planner_inputs(conn, default_cap=2)
    assert empty == PlannerInputs(paused=False, load=Load({}, {}, 2), ftq_gpus=0)

    capped = await add_user(pool, "capped@x.io", "member", {})
    both = await add_user(pool, "both@x.io", "member", {})
    await set_cap(pool, "capped@x.io", 5, {})
    await set_cap(pool, "both@x.io", 0, {})
    loaded = str(uuid.uuid4())  # jobs of a user id the users table does not have
    await pool.executemany(
        "INSERT INTO user_load (user_id, progress_count, progress_gpus) VALUES ($1, $2, $3)",
        [(loaded, 2, 6), (both.id, 1, 4), (str(uuid.uuid4()), 0, 0)],
    )
    await run_command(pool, SCHEDULER, SCHEDULER_STREAM, PauseScheduler(at=T0, by="admin@x.io"), {})
    async with pool.acquire() as conn:
        inputs = await load_planner_inputs(conn, default_cap=2)
    assert inputs.paused is True
    assert inputs.load == Load({loaded: 2, both.id: 1}, {capped.id: 5, both.id: 0}, 2)
    assert inputs.ftq_gpus == 10
