"""The usage charts' numbers (service.ui.usage_data) against jobs with known times."""

from __future__ import annotations

import uuid

import asyncpg

from service.ui import usage_data

_JOB = """
INSERT INTO jobs (id, user_id, user_email, kind, state, gpu_count, fireworks_payload,
                  created_at, started_at, completed_at, version, last_position)
VALUES ($1, $2, $3, 'SFT', $4, $5, '{}'::jsonb, now() - $6::text::interval,
        now() - $7::text::interval, now() - $8::text::interval, 1, 0)
"""
# The GPU-hours chart reads the accounting projection (the figures of GET /usage).
_USAGE = """
INSERT INTO job_usage (job_id, user_id, user_email, kind, gpu_count, admitted_at, completed_at)
SELECT id, user_id, user_email, kind, gpu_count, started_at, completed_at
FROM jobs WHERE id = $1 AND started_at IS NOT NULL
"""
A, B = str(uuid.uuid4()), str(uuid.uuid4())


async def _job(pool: asyncpg.Pool, user: str, state: str, gpus: int, *ago: str | None) -> None:
    email = "a@x" if user == A else "b@x"
    job = uuid.uuid4()
    await pool.execute(_JOB, job, user, email, state, gpus, *ago)
    await pool.execute(_USAGE, job)


def test_running_sums_start_from_before_the_range_and_skip_the_future() -> None:
    assert usage_data.running_sums({0: 3, 2: 2, 3: -5, 9: 7}, 4) == [3, 5, 0, 0]


async def test_usage_series_follow_the_jobs(pool: asyncpg.Pool) -> None:
    # A: 4 GPUs from 5.5 h ago to 3.5 h ago (waited 1 h); B: 2 GPUs running for 2 h (waited
    # 10 min); one more of B's queued for 30 minutes. Buckets end on the hour before now.
    await _job(pool, A, "SUCCESS", 4, "390 minutes", "330 minutes", "210 minutes")
    await _job(pool, B, "PROGRESS", 2, "130 minutes", "2 hours", None)
    await _job(pool, B, "QUEUED", 1, "30 minutes", None, None)
    gpus = await usage_data.chart(pool, "gpus", "day", None, 8)
    in_use = gpus["series"]["GPUs in use"]
    assert len(in_use) == 24 and gpus["series"]["quota"] == [8] * 24
    assert in_use[-1] == 2 and in_use[-2] == 2 and in_use[-4] == 0
    assert in_use[-5] == 4 and in_use[-6] == 4 and in_use[-7] == 0 and max(in_use) == 4
    depth = (await usage_data.chart(pool, "depth", "day", None, 8))["series"]["queued jobs"]
    assert depth[-1] == 1 and depth[-2] == 0 and depth[-7] == 1 and depth[-8] == 0
    waits = (await usage_data.chart(pool, "waits", "day", None, 8))["series"]["jobs"]
    assert sum(waits) == 2 and waits[2] == 1 and waits[3] == 1  # <=15m and <=1h
    hours = await usage_data.chart(pool, "hours", "day", None, 8)
    totals = dict(zip(hours["labels"], hours["series"]["GPU-hours"], strict=True))
    assert abs(totals["a@x"] - 8.0) < 0.01 and abs(totals["b@x"] - 4.0) < 0.01
    mine = await usage_data.chart(pool, "hours", "day", B, 8)
    assert mine["labels"] == ["b@x"]
