"""POST /jobs places the new job from a recent plan (without planning the whole queue again),
advanced by every job placed since, so the placement is what GET /queue (a fresh plan) says,
and a job read right after its submit always has one. (Jobs submitted through another
replica within the snapshot's freshness window are not counted ahead until the next plan.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from events.domain.job import JOB
from events.domain.job_commands import StartAdmission
from events.domain.job_events import AdmissionReason
from events.domain.scheduling import Job, Limits, Pass, Policy
from service.api import views
from service.api.runtime import runtime_of
from service.api.views import PlanSnapshot
from service.commands import run_command
from tests.api.conftest import META, Users, bearer, sft

Client = AsyncTestClient[Litestar]


async def test_submitted_jobs_are_placed_as_a_fresh_plan_places_them(
    app_client: Client, users: Users
) -> None:
    submitted = []
    for key, gpus in [(users.alice, 4), (users.bob, 8), (users.alice, 1), (users.bob, 2)]:
        # a fresh plan knowing every earlier job; the POST then places its job from it
        await app_client.get("/queue", headers=bearer(users.admin))
        job = (await app_client.post("/jobs", json=sft(gpu_count=gpus), headers=bearer(key))).json()
        submitted.append(job)
        got = (await app_client.get(f"/jobs/{job['id']}", headers=bearer(key))).json()
        assert got["queue_position"] is not None and got["pending_reason"]
    placed = [(j["queue_position"], j["pending_reason"]) for j in submitted]
    queue = (await app_client.get("/queue", headers=bearer(users.admin))).json()
    by_id = {e["id"]: (e["queue_position"], e["pending_reason"]) for e in queue}
    assert placed == [by_id[j["id"]] for j in submitted]
    # ranks in FIFO order; bob's 8-GPU job stops the strict pass, so his next one waits
    # behind it, while alice's next one waits for her first (cap 1)
    assert placed == [
        (1, "next to be admitted"),
        (2, "needs 8 GPUs, 4 free"),
        (3, "your earlier queued job goes first (cap 1)"),
        (4, f"behind job {submitted[1]['id']}"),
    ]


async def test_back_to_back_submits_count_each_other(app_client: Client, users: Users) -> None:
    submitted = []
    for key, gpus in [(users.alice, 4), (users.bob, 8), (users.alice, 1), (users.bob, 2)]:
        r = await app_client.post("/jobs", json=sft(gpu_count=gpus), headers=bearer(key))
        submitted.append(r.json())
    queue = (await app_client.get("/queue", headers=bearer(users.admin))).json()
    by_id = {e["id"]: (e["queue_position"], e["pending_reason"]) for e in queue}
    placed = [(j["queue_position"], j["pending_reason"]) for j in submitted]
    assert placed == [by_id[j["id"]] for j in submitted]
    assert placed[2] == (3, "your earlier queued job goes first (cap 1)")


async def test_listed_queued_jobs_all_have_a_placement(app_client: Client, users: Users) -> None:
    for _ in range(3):
        await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))
    listed = (await app_client.get("/jobs", headers=bearer(users.alice))).json()
    assert sorted(j["queue_position"] for j in listed) == [1, 2, 3]


def snapshot_of(queue: list[Job], free: int, build_s: float = 0.0) -> PlanSnapshot:
    pass_ = Pass([], {"h200": free}, Limits(), Policy(), datetime(2026, 1, 2, tzinfo=UTC))
    return PlanSnapshot(pass_.plan(queue), pass_, {}, 0.0, build_s)


def test_a_snapshot_places_new_jobs_in_the_order_they_reach_it() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    queue = [Job("j1", "a", t0, 1), Job("j3", "b", t0 + timedelta(seconds=2), 1)]
    snapshot = snapshot_of(queue, 2)
    # j2 was created before j3 but committed after the snapshot read the queue: it is
    # placed after j3, and the next fresh plan puts it before
    early = Job("j2", "c", t0 + timedelta(seconds=1), 1)
    assert snapshot.place_new(early) == (3, "needs 1 GPUs, 0 free")
    late = Job("j4", "a", t0 + timedelta(seconds=3), 1)
    capped = (4, "your earlier queued job goes first (cap 1)")
    assert snapshot.place_new(late) == capped
    assert snapshot.placement == {"j2": (3, "needs 1 GPUs, 0 free"), "j4": capped}
    again = snapshot_of([queue[0], early, queue[1], late], 2).plan
    assert [p.job.job_id for p in again.pending] == ["j3", "j4"]  # j2 admitted: it came first


def test_a_snapshot_of_a_long_queue_serves_longer() -> None:
    quick = snapshot_of([], 8, build_s=0.001)
    slow = snapshot_of([], 8, build_s=0.05)
    very_slow = snapshot_of([], 8, build_s=5.0)
    assert (quick.fresh_for_s, slow.fresh_for_s, very_slow.fresh_for_s) == (0.2, 2.5, 5.0)


async def _admit_every_queued_job(pool: asyncpg.Pool) -> None:
    """What the admission loop does a few ms after a submit wakes it: AdmissionStarted (on
    the app's own pool: the test client runs the app on a loop of its own)."""
    for (job_id,) in await pool.fetch("SELECT id::text FROM jobs WHERE state = 'QUEUED'"):
        reason = AdmissionReason(policy="strict-fifo", quota=8, in_use=0, available=8,
                                 queue_position=1)  # fmt: skip
        start = StartAdmission(
            at=datetime.now(UTC), fireworks_job_id=job_id, fireworks_job_name=f"x/{job_id}",
            reason=reason,
        )  # fmt: skip
        await run_command(pool, JOB, job_id, start, META)


@pytest.mark.parametrize("warm", [False, True])
async def test_a_plan_taken_after_the_jobs_own_admission_never_counts_it_against_itself(
    app_client: Client, users: Users, monkeypatch: pytest.MonkeyPatch, warm: bool,
) -> None:  # fmt: skip
    """Regression (issue 13 item 9): the first submit came back QUEUED, position 1, "you
    already have a job in PROGRESS", that job being itself: the plan its placement came from
    (a cold one, made after the submit) was read after the loop had admitted it."""
    if warm:  # a plan exists, but too old to serve: the submit's placement makes a new one
        await app_client.get("/queue", headers=bearer(users.admin))
        monkeypatch.setattr(views, "MAX_STALE_S", 0.0)
        monkeypatch.setattr(views, "STALE_PER_BUILD", 0.0)
    measured = views.load_queue
    runtime = runtime_of(app_client.app.state)

    async def admitted_before_the_plan_reads(conn: Any) -> Any:
        await _admit_every_queued_job(runtime.pool)  # the race: the loop admits, the plan reads
        return await measured(conn)

    monkeypatch.setattr(views, "load_queue", admitted_before_the_plan_reads)
    r = await app_client.post("/jobs", json=sft(), headers=bearer(users.alice))
    assert r.status_code == 201, r.text
    job = r.json()
    assert "PROGRESS" not in (job.get("pending_reason") or ""), job
    shown = (job["state"], job.get("queue_position"), job.get("pending_reason"))
    assert shown == ("PROGRESS", None, None), job  # as it is now: admitted
