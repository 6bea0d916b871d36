"""GPU-hour accounting is a projection of the log: after a random workload through the real
store, `job_usage` answers every grouping exactly as an independent fold of the stored
events does, and a rebuild reproduces the table."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.domain.job import JOB
from events.domain.job_commands import (
    ConfirmAdmission,
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
from events.domain.usage import GROUPS, summarize
from projections.rebuild import rebuild, verify
from service.commands import run_command
from service.usage import EPOCH, usage, usage_rows

T0 = datetime(2026, 1, 1, 20, tzinfo=UTC)
REASON = AdmissionReason(policy="strict-fifo", quota=8, in_use=0, available=8, queue_position=1)
STEP = timedelta(minutes=37)  # steps cross hours and days
# What may come next for a job, by (state, admission open): the workload stays plausible.
NEXT = {
    (None, False): ["submit"],
    ("QUEUED", False): ["start", "start", "cancel"],
    ("PROGRESS", True): ["confirm", "confirm", "requeue", "reject", "run"],
    ("PROGRESS", False): ["run", "run", "end", "cancel", "gone"],
}
ENDS = ["JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"]
TERMINAL = {"job.succeeded", "job.failed", "job.cancelled", "job.rejected"}


def command(kind: str, n: int, job_id: str, user: str, gpus: int) -> JobCommand:
    at = T0 + n * STEP
    match kind:
        case "submit":
            return SubmitJob(
                at=at, job_id=job_id, user_id=user, user_email=f"{user[:8]}@x.io",
                kind=("SFT", "DPO", "RFT")[gpus % 3], display_name=None, gpu_count=gpus,
                fireworks_payload={"dataset": "d"},
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
        case "run":
            return ObserveFireworks(at=at, fireworks_state="JOB_STATE_RUNNING", progress=n)
        case _:
            return ObserveFireworks(
                at=at,
                fireworks_state=ENDS[n % 3],
                accelerator_seconds=float(gpus * 1000) if n % 2 else None,
                estimated_cost=gpus * 1.25 if n % 3 else None,
            )


def fold_log(rows: list[asyncpg.Record]) -> dict[str, dict[str, Any]]:
    """An independent fold of the stored job events into accounting facts per job."""
    jobs: dict[str, dict[str, Any]] = {}
    for stream, type_, data in rows:
        event = msgspec.json.decode(data)
        at = datetime.fromisoformat(event["at"])
        if type_ == "job.submitted":
            jobs[stream] = {
                "email": event["user_email"], "kind": event["kind"], "gpus": event["gpu_count"],
                "admitted": None, "ended": None, "accel": None, "cost": None,
            }  # fmt: skip
            continue
        job = jobs[stream]
        if type_ == "job.admitted" and job["admitted"] is None:
            job["admitted"] = at
        elif type_ == "job.returned_to_queue":
            job["admitted"] = None
        elif type_ == "job.fireworks_state_observed":
            if event.get("accelerator_seconds") is not None:
                job["accel"] = event["accelerator_seconds"]
            if event.get("estimated_cost") is not None:
                job["cost"] = event["estimated_cost"]
        elif type_ in TERMINAL:
            job["ended"] = at
    return jobs


def expected_by_user(jobs: dict[str, dict[str, Any]], now: datetime) -> dict[str, Any]:
    out: dict[str, list[float]] = {}
    for job in jobs.values():
        if job["admitted"] is None:
            continue
        end = job["ended"] or now
        total = out.setdefault(job["email"], [0, 0.0, 0.0, 0.0])
        total[0] += 1
        total[1] += job["gpus"] * (end - job["admitted"]).total_seconds()
        total[2] += job["accel"] or 0.0
        total[3] += job["cost"] or 0.0
    return {email: tuple(t) for email, t in out.items()}


admitted: list[int] = []  # users with admitted jobs, per example (checked below)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 9), st.integers(0, 5), st.integers(0, 2), st.integers(1, 8)),
        min_size=5,
        max_size=70,
    ),
    window=st.tuples(st.integers(0, 80), st.integers(0, 80)),
)
async def test_accounting_equals_a_fold_of_the_log_after_a_random_workload(
    pool: asyncpg.Pool, steps: list[tuple[str, int, int, int]], window: tuple[int, int]
) -> None:
    jobs = [str(uuid.uuid4()) for _ in range(6)]
    users = [str(uuid.uuid4()) for _ in range(3)]
    states: dict[int, tuple[str | None, bool]] = {}
    for n, (choice, job, user, gpus) in enumerate(steps):
        options = NEXT.get(states.get(job, (None, False)))
        if options is None:
            continue  # ended
        kind = options[choice % len(options)]
        with contextlib.suppress(CommandRejected):
            state, _ = await run_command(
                pool, JOB, jobs[job], command(kind, n, jobs[job], users[user], gpus), {}
            )
            states[job] = (state.status, state.admission_open)
    now = T0 + (len(steps) + 1) * STEP
    rows = await pool.fetch(
        "SELECT stream_id, type, data::text FROM events WHERE stream_id = ANY($1::text[])"
        " ORDER BY transaction_id, position",
        jobs,
    )
    expected = expected_by_user(fold_log(list(rows)), now)
    mine = {f"{user[:8]}@x.io" for user in users}  # the log holds earlier examples' jobs too
    got = await usage(pool, start=EPOCH, stop=now, now=now, group="user")
    assert {
        r.group: (r.jobs, r.gpu_seconds, r.accelerator_seconds or 0.0, r.estimated_cost or 0.0)
        for r in got
        if r.group in mine
    } == expected
    admitted.append(len(expected))
    # Every grouping of every window shares out the same totals.
    lo, hi = sorted(window)
    start, stop = T0 + lo * STEP, T0 + hi * STEP + STEP
    sums = set()
    for group in GROUPS:
        grouped = await usage(pool, start=start, stop=stop, now=now, group=group)
        sums.add(round(sum(r.gpu_seconds for r in grouped), 6))
    assert len(sums) == 1
    # The database's sums by user and kind are the domain's fold of the same rows.
    accounted = await usage_rows(pool, start=start, stop=stop, now=now)
    for group in ("user", "kind"):
        folded = summarize(accounted, start=start, stop=stop, now=now, group=group)
        summed = await usage(pool, start=start, stop=stop, now=now, group=group)
        assert [(r.group, r.jobs) for r in summed] == [(r.group, r.jobs) for r in folded]
        for a, b in zip(summed, folded, strict=True):
            assert a.gpu_seconds == pytest.approx(b.gpu_seconds)
            for x, y in (
                (a.accelerator_seconds, b.accelerator_seconds),
                (a.estimated_cost, b.estimated_cost),
            ):
                assert (x is None) == (y is None) and (x is None or x == pytest.approx(y))
    async with pool.acquire() as conn:
        assert await verify(conn) == []


def test_the_random_workloads_admitted_jobs() -> None:
    """Guards the property above against vacuous workloads (runs after it, in file order)."""
    assert sum(admitted) > 0, admitted


async def test_a_rebuild_restores_tampered_accounting(pool: asyncpg.Pool) -> None:
    job, user = str(uuid.uuid4()), str(uuid.uuid4())
    for n, kind in enumerate(["submit", "start", "confirm", "run", "end"]):
        await run_command(pool, JOB, job, command(kind, n + 1, job, user, 3), {})
    row = await pool.fetchrow("SELECT gpu_count, admitted_at, completed_at FROM job_usage")
    assert row is not None and row[0] == 3 and row[1] == T0 + 3 * STEP
    assert row[2] == T0 + 5 * STEP
    async with pool.acquire() as conn:
        await conn.execute("UPDATE job_usage SET gpu_count = 99")
        assert any(d.startswith("job_usage") for d in await verify(conn))
        await rebuild(conn)
        assert await verify(conn) == []
    assert await pool.fetchval("SELECT gpu_count FROM job_usage") == 3
