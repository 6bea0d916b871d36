"""An admission decision reads only the head of the queue, and admits exactly what planning
over the whole queue would (checked with tiny chunks, so several reads are needed, each going
on after the last job of the one before, also between jobs created at the same instant)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from events.domain.directory import SCHEDULER, USER, PauseScheduler, SetUserCap, SetUserShare
from events.domain.directory_events import SCHEDULER_STREAM
from events.domain.job import JOB
from events.domain.job_commands import SubmitJob
from events.domain.scheduling import Admission
from service.admission import queue as queue_module
from service.admission.history import SchedulingHistory
from service.admission.queue import (
    first_admission,
    load_planner_inputs,
    load_queue,
    pass_inputs,
)
from service.commands import run_command
from service.directory import add_user
from service.settings import load_settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("policy", ["strict-fifo", "backfill", "reserve"])
async def test_chunked_head_admits_like_the_whole_queue(
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
            fireworks_payload={"dataset": "d"}, gpu_type=rng.choice(["h200", "b200"]),
        )  # fmt: skip
        await run_command(pool, JOB, job, submit, {})
    settings = load_settings({"FTQ_POLICY": policy, "FTQ_BIG_JOB_GPUS": "5"}, None)
    history = SchedulingHistory(120, 168)
    async with pool.acquire() as conn:
        whole = await load_queue(conn)
        fifo = "SELECT id::text FROM jobs WHERE state = 'QUEUED' ORDER BY created_at, id"
        expected = [r[0] for r in await conn.fetch(fifo)]
        assert [j.job_id for j in whole] == expected
        assert {j.gpu_type for j in whole} == {"h200", "b200"}
        assert await load_queue(conn, page=7) == whole  # read in pages, ties between them
        await history.catch_up(conn)
        p = pass_inputs(await load_planner_inputs(conn), settings, history, T0)
        for h200, b200 in ((0, 0), (1, 0), (5, 2), (17, 0), (0, 40), (400, 400)):
            headroom = {"h200": h200, "b200": b200}
            head = await first_admission(conn, p, headroom)
            full = p.plan(whole, headroom, explain=False)
            want = full.admit[0] if full.admit else None
            assert head == want
            assert head is None or isinstance(head, Admission)


async def test_planner_inputs_caps_per_class_shares_and_pause(pool: asyncpg.Pool) -> None:
    """Paused flag, PROGRESS jobs, per-class caps (none: no cap) and shares together, and
    the paused flag even when no user has a setting."""
    async with pool.acquire() as conn:
        empty = await load_planner_inputs(conn)
    assert (empty.paused, empty.running, empty.user_caps, empty.weights) == (False, [], {}, {})

    capped = await add_user(pool, "capped@x.io", "member", {})
    both = await add_user(pool, "both@x.io", "member", {})
    for email, command in (
        ("capped@x.io", SetUserCap(at=T0, cap=5)),
        ("both@x.io", SetUserCap(at=T0, cap=0)),
        ("both@x.io", SetUserCap(at=T0, cap=None, size_class="big", unlimited=True)),
        ("both@x.io", SetUserShare(at=T0, share=2.5)),
    ):
        await run_command(pool, USER, email, command, {})
    await run_command(pool, SCHEDULER, SCHEDULER_STREAM, PauseScheduler(at=T0, by="admin@x.io"), {})
    async with pool.acquire() as conn:
        inputs = await load_planner_inputs(conn)
    assert inputs.paused is True
    assert inputs.user_caps == {
        (capped.id, "small"): 5,
        (both.id, "small"): 0,
        (both.id, "big"): None,
    }
    assert inputs.weights == {both.id: 2.5}
