"""The usage charts' numbers, computed from the jobs projection (itself rebuilt from the log):
GPUs in use and queue depth at each bucket's end, the distribution of waits of the jobs
admitted in the range, and GPU-hours per user (GPUs x hours of PROGRESS inside the range).
Members get only their own GPU-hours."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final, Literal

import asyncpg

Range = Literal["day", "week", "month"]
RANGES: Final[dict[str, tuple[timedelta, timedelta]]] = {
    "day": (timedelta(days=1), timedelta(hours=1)),
    "week": (timedelta(days=7), timedelta(hours=6)),
    "month": (timedelta(days=30), timedelta(days=1)),
}
CHARTS: Final = ("gpus", "depth", "waits", "hours")
WAIT_BINS_S: Final = (60, 300, 900, 3600, 4 * 3600, 24 * 3600)

# $1 range start, $2 bucket width, $3 bucket count. Only jobs overlapping the range count.
_GPUS: Final = """
WITH b AS (SELECT $1::timestamptz + $2::interval * g AS at FROM generate_series(1, $3) g),
j AS (SELECT gpu_count, started_at, completed_at FROM jobs
      WHERE started_at IS NOT NULL AND (completed_at IS NULL OR completed_at > $1))
SELECT b.at, coalesce(sum(j.gpu_count), 0)::int
FROM b LEFT JOIN j ON j.started_at <= b.at AND (j.completed_at IS NULL OR j.completed_at > b.at)
GROUP BY b.at ORDER BY b.at
"""
_DEPTH: Final = """
WITH b AS (SELECT $1::timestamptz + $2::interval * g AS at FROM generate_series(1, $3) g),
j AS (SELECT created_at, coalesce(started_at, completed_at) AS left_at FROM jobs
      WHERE coalesce(started_at, completed_at) IS NULL OR coalesce(started_at, completed_at) > $1)
SELECT b.at, count(j.created_at)::int
FROM b LEFT JOIN j ON j.created_at <= b.at AND (j.left_at IS NULL OR j.left_at > b.at)
GROUP BY b.at ORDER BY b.at
"""
_WAITS: Final = """
SELECT extract(epoch FROM started_at - created_at)::float8 FROM jobs
WHERE started_at >= $1 AND ($2::uuid IS NULL OR user_id = $2::uuid)
"""
_HOURS: Final = """
SELECT user_email,
       sum(gpu_count * extract(epoch FROM
           least(coalesce(completed_at, now()), now()) - greatest(started_at, $1)) / 3600.0)
FROM jobs
WHERE started_at IS NOT NULL AND (completed_at IS NULL OR completed_at > $1)
  AND ($2::uuid IS NULL OR user_id = $2::uuid)
GROUP BY user_email ORDER BY 2 DESC LIMIT 50
"""


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
        rows = await pool.fetch(_GPUS if name == "gpus" else _DEPTH, start, width, count)
        fmt = "%H:%M" if range_ == "day" else "%m-%d %H:%M"
        labels = [r[0].strftime(fmt) for r in rows]
        values = [r[1] for r in rows]
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
    rows = await pool.fetch(_HOURS, start, user_id)
    return {
        "labels": [r[0] for r in rows],
        "series": {"GPU-hours": [round(float(r[1]), 4) for r in rows]},
    }
