"""The usage charts' numbers, computed from the jobs projection (itself rebuilt from the log):
GPUs in use and queue depth at each bucket's end, the distribution of waits of the jobs
admitted in the range, and GPU-hours per user from the one accounting ftq has (the operations
issue's: `service.usage` over the `job_usage` projection, the same figures as `GET /usage`).
Members get only their own GPU-hours."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final, Literal

import asyncpg

from service.usage import usage

Range = Literal["day", "week", "month"]
RANGES: Final[dict[str, tuple[timedelta, timedelta]]] = {
    "day": (timedelta(days=1), timedelta(hours=1)),
    "week": (timedelta(days=7), timedelta(hours=6)),
    "month": (timedelta(days=30), timedelta(days=1)),
}
CHARTS: Final = ("gpus", "depth", "waits", "hours")
WAIT_BINS_S: Final = (60, 300, 900, 3600, 4 * 3600, 24 * 3600)

# A sweep over changes instead of a join of buckets with jobs: +GPUs when a job starts, -GPUs
# when it ends (queue depth: +1 when submitted, -1 when it leaves the queue), each change put
# in the first bucket whose end is at or after it (0: before the range). The running sum of
# the buckets is the value at each bucket's end. $1 range start, $2 bucket width.
_GPU_CHANGES: Final = """
WITH d AS (
    SELECT started_at AS at, gpu_count AS delta FROM jobs WHERE started_at IS NOT NULL
    UNION ALL
    SELECT completed_at, -gpu_count FROM jobs
    WHERE started_at IS NOT NULL AND completed_at IS NOT NULL
)
SELECT greatest(0, ceil(extract(epoch FROM at - $1) / extract(epoch FROM $2::interval)))::int,
       sum(delta)::bigint
FROM d GROUP BY 1
"""
_DEPTH_CHANGES: Final = """
WITH d AS (
    SELECT created_at AS at, 1 AS delta FROM jobs
    UNION ALL
    SELECT coalesce(started_at, completed_at), -1 FROM jobs
    WHERE coalesce(started_at, completed_at) IS NOT NULL
)
SELECT greatest(0, ceil(extract(epoch FROM at - $1) / extract(epoch FROM $2::interval)))::int,
       sum(delta)::bigint
FROM d GROUP BY 1
"""
_WAITS: Final = """
SELECT extract(epoch FROM started_at - created_at)::float8 FROM jobs
WHERE started_at >= $1 AND ($2::uuid IS NULL OR user_id = $2::uuid)
"""


def running_sums(changes: dict[int, int], count: int) -> list[int]:
    """The value at the end of buckets 1..count from the changes per bucket (0: earlier;
    changes after the last bucket, i.e. in the future, are left out)."""
    total, out = changes.get(0, 0), []
    for i in range(1, count + 1):
        total += changes.get(i, 0)
        out.append(max(0, total))
    return out


def _label(seconds: int) -> str:
    return f"≤{seconds // 60}m" if seconds < 3600 else f"≤{seconds // 3600}h"


async def chart(
    pool: asyncpg.Pool, name: str, range_: str, user_id: str | None, quota: int
) -> dict[str, Any]:
    """`{"labels": [...], "series": {name: [...]}}` of one chart over one range."""
    span, width = RANGES[range_]
    start = await pool.fetchval("SELECT now() - $1::interval", span)
    count = int(span / width)
    if name in ("gpus", "depth"):
        rows = await pool.fetch(_GPU_CHANGES if name == "gpus" else _DEPTH_CHANGES, start, width)
        values = running_sums({int(r[0]): int(r[1]) for r in rows}, count)
        fmt = "%H:%M" if range_ == "day" else "%m-%d %H:%M"
        labels = [(start + width * (i + 1)).strftime(fmt) for i in range(count)]
        if name == "gpus":
            return {"labels": labels, "series": {"GPUs in use": values, "quota": [quota] * count}}
        return {"labels": labels, "series": {"queued jobs": values}}
    if name == "waits":
        waits = [r[0] for r in await pool.fetch(_WAITS, start, user_id)]
        counts = [0] * (len(WAIT_BINS_S) + 1)
        for w in waits:
            counts[next((i for i, b in enumerate(WAIT_BINS_S) if w <= b), len(WAIT_BINS_S))] += 1
        labels = [_label(b) for b in WAIT_BINS_S] + [f">{WAIT_BINS_S[-1] // 3600}h"]
        return {"labels": labels, "series": {"jobs": counts}}
    now = await pool.fetchval("SELECT now()")
    per_user = await usage(pool, start=start, stop=now, now=now, group="user", user_id=user_id)
    top = sorted(per_user, key=lambda r: r.gpu_seconds, reverse=True)[:50]
    return {
        "labels": [r.group for r in top],
        "series": {"GPU-hours": [round(r.gpu_seconds / 3600, 4) for r in top]},
    }
