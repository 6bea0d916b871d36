"""The admission loop against a real database and the in-process Fireworks simulator."""

from __future__ import annotations

import asyncio
import uuid

import msgspec

from events.domain.directory import SCHEDULER
from events.domain.directory_events import SCHEDULER_STREAM
from events.domain.job import JOB
from events.domain.job_commands import ConfirmCancelled, RequestCancel
from events.store.log import Cursor, read_all
from projections.audit import audit
from projections.recorder import hold_admission_gate
from service.capacity import CapacityReader
from service.commands import run_command
from service.directory import add_user, set_cap
from service.settings import Settings
from tests.integration.admission_env import (
    ACCOUNT,
    META,
    PAYLOAD,
    Env,
    env,
    wait_for_gate_waiters,
)

__all__ = ["env"]


async def test_fifo_order_across_kinds_within_the_budget(env: Env) -> None:
    sft = await env.submit("SFT", 2)
    dpo = await env.submit("DPO", 2)
    rft = await env.submit("RFT", 2)
    last = await env.submit("SFT", 4)
    summary = await env.loop().tick()
    assert summary.error is None and summary.admitted == 3
    assert await env.states(sft, dpo, rft, last) == ["PROGRESS"] * 3 + ["QUEUED"]
    positions = [sft, dpo, rft]
    reasons = await env.pool.fetch(
        "SELECT stream_id, data->'reason' AS r FROM events WHERE type = 'job.admission_started'"
        " ORDER BY position"
    )
    assert [r[0] for r in reasons] == positions
    first = msgspec.json.decode(reasons[0][1])
    assert first == {
        "policy": "strict-fifo",
        "quota": 8,
        "in_use": 0,
        "available": 8,
        "queue_position": 1,
        "headroom_source": "fireworks-quotas",
        # the planner's evidence: the quota of the job's type, its class, the cap applied
        "gpu_type": "h200",
        "size_class": "small",
        "cap": 1,
        "user_load": 0,
        "big_job_reserve": 0,
        "reservation_job": None,
        "reservation_at": None,
        "reservation_spare": None,
        "spare_before": None,
        "estimate_s": None,
        "usage": None,
        "holders": [],
    }
    assert msgspec.json.decode(reasons[2][1])["available"] == 4
    assert env.sim.snapshot()["jobs_created"] == {sft: 1, dpo: 1, rft: 1}
    assert (await env.row(sft))["admission_open"] is False


async def test_per_user_cap_default_and_per_user(env: Env) -> None:
    alice = await add_user(env.pool, "alice@example.com", "member", META)
    await set_cap(env.pool, "alice@example.com", 2, META)
    a1, a2, a3 = [await env.submit(gpus=1, user=alice.id) for _ in range(3)]
    bob = str(uuid.uuid4())
    b1, b2 = [await env.submit(gpus=1, user=bob) for _ in range(2)]
    await env.loop().tick()
    assert await env.states(a1, a2, a3, b1, b2) == [
        "PROGRESS",
        "PROGRESS",
        "QUEUED",
        "PROGRESS",
        "QUEUED",
    ]


async def test_strict_fifo_blocks_behind_a_big_job_and_backfill_does_not(env: Env) -> None:
    small = await env.submit(gpus=6)
    big = await env.submit(gpus=4)
    tiny = await env.submit(gpus=2)
    await env.loop().tick()
    assert await env.states(small, big, tiny) == ["PROGRESS", "QUEUED", "QUEUED"]
    await env.loop(policy="backfill").tick()
    assert await env.states(small, big, tiny) == ["PROGRESS", "QUEUED", "PROGRESS"]


async def test_jobs_started_outside_ftq_reduce_the_headroom(env: Env) -> None:
    env.sim.start_external_job(6)
    first = await env.submit(gpus=2)
    second = await env.submit(gpus=2)
    summary = await env.loop().tick()
    assert (summary.quota, summary.in_use, summary.available) == (8, 6, 2)
    assert await env.states(first, second) == ["PROGRESS", "QUEUED"]


async def test_quota_refusal_returns_the_job_to_its_place_and_ends_the_pass(env: Env) -> None:
    settings = Settings(fireworks_account_id=ACCOUNT, fireworks_gpu_quota=16)
    loop = env.loop(capacity=CapacityReader(None, settings), fireworks_gpu_quota=16)
    a, b, c, d = [await env.submit(gpus=g) for g in (4, 4, 4, 1)]
    summary = await loop.tick()
    assert (summary.admitted, summary.returned) == (2, 1)
    assert await env.states(a, b, c, d) == ["PROGRESS", "PROGRESS", "QUEUED", "QUEUED"]
    assert "in use: 8, quota: 8" in (await env.row(c))["error"]
    assert await env.event_types(d) == ["job.submitted"]  # the pass stopped before it
    queue = await env.pool.fetch(
        "SELECT id::text FROM jobs WHERE state='QUEUED' ORDER BY created_at, id"
    )
    assert [r[0] for r in queue] == [c, d]


async def test_rejected_payload_fails_with_fireworks_message(env: Env) -> None:
    bad = await env.submit("SFT", 2, payload={"dataset": "d"})
    good = await env.submit("DPO", 2)
    summary = await env.loop().tick()
    assert (summary.failed, summary.admitted) == (1, 1)
    row = await env.row(bad)
    assert row["state"] == "FAIL"
    assert "baseModel or warmStartFrom" in row["error"]
    assert (await env.row(good))["state"] == "PROGRESS"


async def test_job_deleted_outside_ftq_is_cancelled(env: Env) -> None:
    job = await env.submit(gpus=2)
    loop = env.loop()
    await loop.tick()
    env.sim.delete_externally(job)
    summary = await loop.tick()
    assert summary.cancelled == 1
    assert (await env.row(job))["state"] == "CANCELLED"
    reason = await env.pool.fetchval(
        "SELECT data->>'reason' FROM events WHERE stream_id = $1 AND type = 'job.cancelled'", job
    )
    assert reason == "deleted outside ftq"


async def test_fireworks_states_are_reconciled(env: Env) -> None:
    done, failed = await env.submit(gpus=2), await env.submit(gpus=2)
    loop = env.loop()
    await loop.tick()
    env.sim.set_outcome(done, "JOB_STATE_COMPLETED")
    env.sim.set_outcome(failed, "JOB_STATE_FAILED", "out of memory")
    await loop.tick()
    assert await env.states(done, failed) == ["SUCCESS", "FAIL"]
    assert (await env.row(failed))["error"] == "out of memory"
    before = await env.pool.fetchval("SELECT count(*) FROM events")
    await loop.tick()
    assert await env.pool.fetchval("SELECT count(*) FROM events") == before


async def test_outage_changes_nothing_and_admissions_resume(env: Env) -> None:
    running = await env.submit(gpus=2)
    loop = env.loop()
    await loop.tick()
    queued = await env.submit(gpus=2)
    before = await env.pool.fetchval("SELECT count(*) FROM events")
    env.sim.faults.update({"error_rate": 1.0})
    summary = await loop.tick()
    assert summary.error is None and summary.available == 0
    assert await env.pool.fetchval("SELECT count(*) FROM events") == before
    assert await env.states(running, queued) == ["PROGRESS", "QUEUED"]
    env.sim.faults.reset()
    await loop.tick()
    assert await env.states(running, queued) == ["PROGRESS", "PROGRESS"]


async def test_outage_with_configured_quota_leaves_admission_open_not_failed(env: Env) -> None:
    loop = env.loop(fireworks_gpu_quota=8)
    a, b = await env.submit(gpus=2), await env.submit(gpus=2)
    env.sim.faults.update({"error_rate": 1.0})
    summary = await loop.tick()
    assert summary.admitted == 0 and summary.failed == 0
    assert [(await env.row(j))["admission_open"] for j in (a, b)] == [True, False]
    env.sim.faults.reset()
    await loop.tick()
    assert await env.states(a, b) == ["PROGRESS", "PROGRESS"]
    assert env.sim.snapshot()["jobs_created"] == {a: 1, b: 1}


async def test_lost_create_response_admits_once(env: Env) -> None:
    job = await env.submit(gpus=2)
    env.sim.faults.update({"lose_next_creates": 1})
    loop = env.loop()
    await loop.tick()  # create answered 503: admission left open
    assert (await env.row(job))["admission_open"] is True
    await loop.tick()  # GET finds it
    row = await env.row(job)
    assert (row["state"], row["admission_open"]) == ("PROGRESS", False)
    assert env.sim.snapshot()["jobs_created"] == {job: 1}


async def test_paused_scheduler_reconciles_but_admits_nothing(env: Env) -> None:
    from events.domain.directory import PauseScheduler  # noqa: PLC0415

    running = await env.submit(gpus=2)
    loop = env.loop()
    await loop.tick()
    await run_command(
        env.pool, SCHEDULER, SCHEDULER_STREAM, PauseScheduler(at=env.clock(), by="ops"), META
    )
    queued = await env.submit(gpus=2)
    env.sim.set_outcome(running, "JOB_STATE_COMPLETED")
    await loop.tick()
    assert await env.states(running, queued) == ["SUCCESS", "QUEUED"]
    assert loop.status().paused is True


async def test_payloads_cover_every_kind() -> None:
    assert set(PAYLOAD) == {"SFT", "DPO", "RFT"}


async def _audited(env: Env) -> list[str]:
    """`ftq audit` over this database's whole log: the violations' messages ([] = clean)."""
    async with env.pool.acquire() as conn:
        rows = await read_all(conn, Cursor.START, 100_000)
    return [v.message for v in audit(rows, default_cap=1)]


async def _positions(env: Env, *job_ids: str) -> list[int]:
    """Where each job's admission started in the log."""
    return [
        await env.pool.fetchval(
            "SELECT position FROM events WHERE stream_id = $1 AND type = $2",
            job_id,
            "job.admission_started",
        )
        for job_id in job_ids
    ]


async def test_a_job_refused_mid_pass_frees_its_users_next_job_before_later_users(
    env: Env,
) -> None:
    """Regression (`make soak`): a pass planned once went on admitting its plan after one of
    its own admissions failed, past an earlier job of that user which had become eligible."""
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    refused = await env.submit("SFT", 4, user=alice, payload={"dataset": "d"})  # no baseModel
    second = await env.submit("SFT", 4, user=alice)  # waits: alice's cap is 1
    later = await env.submit("SFT", 4, user=bob)
    summary = await env.loop().tick()
    assert (summary.failed, summary.admitted) == (1, 2)
    assert await env.states(refused, second, later) == ["FAIL", "PROGRESS", "PROGRESS"]
    first, then = await _positions(env, second, later)
    assert first < then  # FIFO: alice's second job was first once her slot was free
    assert await _audited(env) == []


async def test_a_slot_freed_by_a_cancel_during_a_pass_counts_for_the_rest_of_it(
    env: Env,
) -> None:
    """Regression (`make soak`): a user's PROGRESS job cancelled while a pass was admitting
    did not make that user's queued job eligible for the rest of the pass."""
    alice, bob, carol = (str(uuid.uuid4()) for _ in range(3))
    running = await env.submit("SFT", 2, user=alice)
    await env.loop().tick()
    assert await env.states(running) == ["PROGRESS"]
    waiting = await env.submit("SFT", 2, user=alice)  # waits: alice's cap is 1
    bobs = await env.submit("SFT", 2, user=bob)
    carols = await env.submit("SFT", 2, user=carol)

    async def cancel_alices_running_job(step: str, job_id: str) -> None:
        if step == "admission_started" and job_id == bobs:  # mid-pass, from outside
            await run_command(env.pool, JOB, running, RequestCancel(at=env.clock(), by="x"), META)
            await run_command(env.pool, JOB, running, ConfirmCancelled(at=env.clock()), META)

    await env.loop(checkpoint=cancel_alices_running_job).tick()
    assert await env.states(running, waiting, bobs, carols) == [
        "CANCELLED",
        "PROGRESS",
        "PROGRESS",
        "PROGRESS",
    ]
    assert await _positions(env, bobs, waiting, carols) == sorted(
        await _positions(env, bobs, waiting, carols)
    )
    assert await _audited(env) == []


async def test_a_submit_during_an_admission_decision_comes_after_it_in_the_log(env: Env) -> None:
    """A decision sees every job committed before it; a submit committed while it is made
    waits for the gate, so in the log's read order (transaction id, position) it follows the
    decision even though its `created_at` is older than what the decision admitted."""
    async with env.pool.acquire() as conn, conn.transaction():
        await hold_admission_gate(conn)
        decision = await conn.fetchval("SELECT pg_current_xact_id()")  # the decision's id
        submit = asyncio.create_task(env.submit("SFT", 2))
        await wait_for_gate_waiters(env.pool, 1)  # the submit is held at the gate
        assert not submit.done()
        held_at = await conn.fetchval("SELECT max(position) FROM events")
    job_id = await asyncio.wait_for(submit, 5)
    row = await env.pool.fetchrow(
        "SELECT position, transaction_id FROM events WHERE stream_id = $1", job_id
    )
    assert row is not None
    assert row["position"] > (held_at or 0) and row["transaction_id"] > decision


async def test_the_admission_gate_holds_back_only_what_frees_a_slot(env: Env) -> None:
    """While an admission decision holds the gate, a transition that frees a user's slot (a
    PROGRESS job cancelled) and a cap change wait for it, so the log orders them after the
    decision; a cancel of a QUEUED job, which frees no slot, does not wait."""
    alice = str(uuid.uuid4())
    running = await env.submit("SFT", 2, user=alice)
    await env.loop().tick()
    queued = await env.submit("SFT", 2, user=alice)
    await add_user(env.pool, "cap@example.com", "member", META)
    async with env.pool.acquire() as conn, conn.transaction():
        await hold_admission_gate(conn)
        free_slot = asyncio.create_task(
            run_command(env.pool, JOB, running, RequestCancel(at=env.clock(), by="x"), META)
        )
        await free_slot  # a cancel *request* frees nothing: the job is still in PROGRESS
        confirm = asyncio.create_task(
            run_command(env.pool, JOB, running, ConfirmCancelled(at=env.clock()), META)
        )
        cap = asyncio.create_task(set_cap(env.pool, "cap@example.com", 3, META))
        other = run_command(env.pool, JOB, queued, RequestCancel(at=env.clock(), by="x"), META)
        await asyncio.wait_for(other, 5)  # QUEUED -> CANCELLED: not held back
        await wait_for_gate_waiters(env.pool, 2)  # the slot-freeing cancel and the cap change
        assert not confirm.done() and not cap.done()
        held_at = await conn.fetchval("SELECT max(position) FROM events")
    await asyncio.wait_for(asyncio.gather(confirm, cap), 5)
    assert await env.states(running, queued) == ["CANCELLED", "CANCELLED"]
    after = await env.pool.fetch(
        "SELECT type FROM events WHERE position > $1 ORDER BY position", held_at
    )
    assert sorted(r[0] for r in after) == ["job.cancelled", "user.cap_set"]


async def test_a_cancelled_running_job_shows_the_fireworks_state_seen_at_cancel_time(
    env: Env,
) -> None:
    """Regression (issue 13 item 10): a cancelled job kept `JOB_STATE_PENDING, 7 %`."""
    from service.cancellation import cancel_job  # noqa: PLC0415

    job = await env.submit(gpus=2)
    loop = env.loop()
    await loop.tick()
    env.sim.advance(100)
    await loop.tick()
    before = await env.row(job)
    assert before["state"] == "PROGRESS" and before["fireworks_state"] is not None
    outcome = await cancel_job(env.pool, env.client, job, "u@example.com", META, clock=env.clock)
    assert outcome.carried_out
    row = await env.row(job)
    assert row["state"] == "CANCELLED"
    assert row["fireworks_state"] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"), row
    recorded = await env.pool.fetchval(
        "SELECT data->>'fireworks_state' FROM events WHERE stream_id = $1"
        " AND type = 'job.cancelled'",
        job,
    )
    assert recorded == row["fireworks_state"]
