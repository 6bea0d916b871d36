"""Pipelines (`after`, issue 18 item 5) in the admission loop against the simulator: a job
waits until its dependencies are SUCCESS and blocks no one meanwhile; an SFT -> DPO chain
submitted at once runs in order; a dependency that ends FAIL or CANCELLED fails its
dependents at once (a `job.dependency_failed` event by the leader), down a chain; the audit
and a rebuild of the projections agree with the log."""

from __future__ import annotations

import uuid
from typing import Any

from events.domain.job import JOB
from events.domain.job_commands import RequestCancel, SubmitJob
from projections.rebuild import verify
from service.commands import run_command
from tests.integration.admission_env import META, PAYLOAD, Env, env
from tests.integration.test_admission import _audited

__all__ = ["env"]
USER = str(uuid.uuid4())


async def submit(
    env: Env, kind: str = "SFT", after: tuple[str, ...] = (), user: str = USER, gpus: int = 4
) -> str:
    job_id = str(uuid.uuid4())
    payload: dict[str, Any] = dict(PAYLOAD[kind])  # type: ignore[index]
    if kind == "DPO":
        payload = {"dataset": "accounts/a/datasets/prefs", "warmStartFrom": f"sft-of-{after}"}
    command = SubmitJob(
        at=env.clock(),
        job_id=job_id,
        user_id=user,
        user_email="u@example.com",
        kind=kind,  # type: ignore[arg-type]
        display_name=None,
        gpu_count=gpus,
        fireworks_payload=payload,
        after=after,
    )
    await run_command(env.pool, JOB, job_id, command, META)
    return job_id


async def clean(env: Env) -> None:
    assert await _audited(env) == []
    async with env.pool.acquire() as conn:
        assert await verify(conn) == []


async def test_sft_then_dpo_submitted_at_once(env: Env) -> None:
    sft = await submit(env)
    dpo = await submit(env, "DPO", after=(sft,))
    other = await submit(env, user=str(uuid.uuid4()))  # behind the waiting DPO in FIFO order
    loop = env.loop(user_cap=2)
    await loop.tick()
    assert await env.states(sft, dpo, other) == ["PROGRESS", "QUEUED", "PROGRESS"]
    await clean(env)
    await loop.tick()
    assert await env.states(dpo) == ["QUEUED"]  # still waiting, though alice is under her cap
    env.sim.set_outcome(sft, "JOB_STATE_COMPLETED")
    env.sim.set_outcome(other, "JOB_STATE_COMPLETED")
    await loop.tick()
    assert await env.states(sft, dpo) == ["SUCCESS", "PROGRESS"]
    order = await env.pool.fetch(
        "SELECT stream_id, type FROM events WHERE stream_id = ANY($1) AND type IN"
        " ('job.succeeded', 'job.admission_started') ORDER BY position",
        [sft, dpo],
    )
    assert [tuple(r) for r in order] == [
        (sft, "job.admission_started"),
        (sft, "job.succeeded"),
        (dpo, "job.admission_started"),
    ]
    assert await env.pool.fetchval("SELECT count(*) FROM job_dependencies") == 0
    await clean(env)


async def test_a_failed_dependency_fails_the_chain_at_once(env: Env) -> None:
    a = await submit(env)
    b = await submit(env, "DPO", after=(a,))
    c = await submit(env, "DPO", after=(b,))
    loop = env.loop()
    await loop.tick()
    env.sim.set_outcome(a, "JOB_STATE_FAILED", "out of memory")
    summary = await loop.tick()
    assert await env.states(a, b, c) == ["FAIL", "FAIL", "FAIL"]
    assert summary.dependency_failed == 2
    assert (await env.row(b))["error"] == (
        f"job {a} it waits for (after) ended FAIL: this job cannot run"
    )
    assert f"job {b}" in (await env.row(c))["error"]
    assert await env.event_types(b) == ["job.submitted", "job.dependency_failed"]
    actor = await env.pool.fetchval(
        "SELECT metadata->>'actor' FROM events WHERE stream_id = $1 AND stream_version = 2", b
    )
    assert actor == "admission-loop"
    assert await env.pool.fetchval("SELECT count(*) FROM job_dependencies") == 0
    await clean(env)


async def test_a_cancelled_dependency_fails_its_dependent(env: Env) -> None:
    blocker = await submit(env, gpus=8, user=str(uuid.uuid4()))
    a = await submit(env)  # QUEUED behind the 8-GPU job
    b = await submit(env, "DPO", after=(a,))
    loop = env.loop()
    await loop.tick()
    assert await env.states(blocker, a, b) == ["PROGRESS", "QUEUED", "QUEUED"]
    await run_command(env.pool, JOB, a, RequestCancel(at=env.clock(), by="u@example.com"), META)
    await loop.tick()
    assert await env.states(a, b) == ["CANCELLED", "FAIL"]
    assert "ended CANCELLED" in (await env.row(b))["error"]
    await clean(env)
