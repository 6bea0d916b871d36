"""Runtime limits end to end: the admission loop against a real database and the in-process
Fireworks simulator, with ftq's clock moved forward instead of waiting."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from events.domain.job import JOB
from events.domain.job_commands import SubmitJob
from events.store.log import Cursor, read_all
from projections.audit import audit
from projections.rebuild import verify
from service.commands import run_command
from tests.integration.admission_env import META, PAYLOAD, Env, env

__all__ = ["env"]


class Crash(Exception):
    """The leader died here."""


async def submit(env: Env, max_runtime: int | None = None, gpus: int = 2) -> str:
    job_id = str(uuid.uuid4())
    command = SubmitJob(
        at=env.clock(),
        job_id=job_id,
        user_id=str(uuid.uuid4()),
        user_email="u@example.com",
        kind="SFT",
        display_name=None,
        gpu_count=gpus,
        fireworks_payload=PAYLOAD["SFT"],
        max_runtime_minutes=max_runtime,
    )
    await run_command(env.pool, JOB, job_id, command, META)
    return job_id


def later(env: Env, minutes: float) -> None:
    env.clock.now += timedelta(minutes=minutes)


async def events_of(env: Env, job_id: str, type_: str) -> list[dict[str, Any]]:
    rows = await env.pool.fetch(
        "SELECT data FROM events WHERE stream_id = $1 AND type = $2 ORDER BY stream_version",
        job_id,
        type_,
    )
    import json  # noqa: PLC0415

    return [json.loads(r[0]) for r in rows]


async def clean_log(env: Env) -> None:
    async with env.pool.acquire() as conn:
        rows = await read_all(conn, Cursor.START, 100_000)
        assert [v.message for v in audit(rows, default_cap=1)] == []
        assert await verify(conn) == []


async def test_a_job_past_its_limit_is_cancelled_once_with_the_reason(env: Env) -> None:
    limited, free = await submit(env, max_runtime=5), await submit(env)
    loop = env.loop()
    await loop.tick()
    assert await env.states(limited, free) == ["PROGRESS", "PROGRESS"]
    later(env, 4.9)
    await loop.tick()
    assert await env.states(limited, free) == ["PROGRESS", "PROGRESS"]
    later(env, 0.2)
    with capture_logs() as logs:
        await loop.tick()
    row = await env.row(limited)
    assert (row["state"], row["error"]) == ("CANCELLED", "max runtime exceeded (5 min)")
    assert (await env.row(free))["state"] == "PROGRESS"  # no limit of its own, no default
    (asked,) = await events_of(env, limited, "job.cancel_requested")
    assert asked["by"] == "ftq" and asked["reason"] == "max runtime exceeded (5 min)"
    assert (asked["limit_minutes"], asked["limit_source"]) == (5, "job")
    (cancelled,) = await events_of(env, limited, "job.cancelled")
    assert cancelled["error"] == "max runtime exceeded (5 min)"
    assert env.sim.snapshot()["cancel_requests"] == {limited: 1}
    assert any(e["event"] == "job.runtime_limit_exceeded" for e in logs)
    later(env, 60)
    await loop.tick()  # nothing more to do
    assert env.sim.snapshot()["cancel_requests"] == {limited: 1}
    await clean_log(env)


async def test_the_default_limit_applies_and_a_jobs_own_limit_wins(env: Env) -> None:
    default_only, longer = await submit(env), await submit(env, max_runtime=45)
    loop = env.loop(max_runtime_hours=0.5)
    await loop.tick()
    later(env, 31)
    await loop.tick()
    assert await env.states(default_only, longer) == ["CANCELLED", "PROGRESS"]
    assert (await env.row(default_only))["error"] == "max runtime exceeded (30 min)"
    (asked,) = await events_of(env, default_only, "job.cancel_requested")
    assert asked["limit_source"] == "FTQ_MAX_RUNTIME_HOURS"
    later(env, 15)
    await loop.tick()
    assert await env.states(longer) == ["CANCELLED"]
    assert (await env.row(longer))["error"] == "max runtime exceeded (45 min)"


async def test_counted_from_admission_not_submission(env: Env) -> None:
    env.sim.state.quotas["training-h200-count"].value = 2
    first, second = await submit(env, gpus=2), await submit(env, max_runtime=10, gpus=2)
    loop = env.loop()
    await loop.tick()
    assert await env.states(first, second) == ["PROGRESS", "QUEUED"]
    later(env, 30)  # second waits 30 minutes in the queue
    env.sim.set_outcome(first, "JOB_STATE_COMPLETED")
    await loop.tick()
    await loop.tick()
    assert await env.states(first, second) == ["SUCCESS", "PROGRESS"]
    later(env, 9)
    await loop.tick()
    assert await env.states(second) == ["PROGRESS"]
    later(env, 2)
    await loop.tick()
    assert await env.states(second) == ["CANCELLED"]


async def test_a_leader_killed_between_decision_and_cancel_call_cancels_exactly_once(
    env: Env,
) -> None:
    job = await submit(env, max_runtime=5)
    await env.loop().tick()
    later(env, 6)

    async def crash(step: str, job_id: str) -> None:
        if step == "runtime_cancel_decided":
            raise Crash(job_id)

    summary = await env.loop(checkpoint=crash).tick()
    assert summary.error is not None and "Crash" in summary.error
    row = await env.row(job)
    assert (row["state"], row["cancel_requested_by"]) == ("PROGRESS", "ftq")
    assert env.sim.snapshot()["cancel_requests"] == {}  # Fireworks never heard of it
    fresh = env.loop()  # the next leader
    await fresh.tick(full_reconcile=False)  # even a NOTIFY-driven pass carries it out
    row = await env.row(job)
    assert (row["state"], row["error"]) == ("CANCELLED", "max runtime exceeded (5 min)")
    for _ in range(2):
        later(env, 10)
        await fresh.tick()
    assert env.sim.snapshot()["cancel_requests"] == {job: 1}
    assert len(await events_of(env, job, "job.cancel_requested")) == 1
    assert len(await events_of(env, job, "job.cancelled")) == 1
    await clean_log(env)


async def test_a_leader_killed_after_the_cancel_call_does_not_cancel_twice(env: Env) -> None:
    job = await submit(env, max_runtime=5)
    await env.loop().tick()
    later(env, 6)
    crashed = False

    async def crash_after_fireworks(step: str, job_id: str) -> None:
        nonlocal crashed
        if step == "runtime_cancel_decided":
            await env.client.cancel_job("SFT", job_id)  # the call went out, then the crash
            crashed = True
            raise Crash(job_id)

    await env.loop(checkpoint=crash_after_fireworks).tick()
    assert crashed
    await env.loop().tick()
    row = await env.row(job)
    assert (row["state"], row["error"]) == ("CANCELLED", "max runtime exceeded (5 min)")
    # the retry found the job already cancelling on Fireworks and settled it by a GET
    assert env.sim.snapshot()["cancel_requests"] == {job: 2}
    assert len(await events_of(env, job, "job.cancelled")) == 1


@pytest.mark.parametrize("max_runtime", [None, 30])
async def test_a_job_that_finishes_first_is_not_cancelled(
    env: Env, max_runtime: int | None
) -> None:
    job = await submit(env, max_runtime=max_runtime)
    loop = env.loop(max_runtime_hours=1)
    await loop.tick()
    env.sim.set_outcome(job, "JOB_STATE_COMPLETED")
    later(env, 120)
    await loop.tick()
    assert await env.states(job) == ["SUCCESS"]
    assert env.sim.snapshot()["cancel_requests"] == {}
