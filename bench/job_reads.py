"""Benchmark: what the projections joined onto the API's job reads cost the database.

`GET /jobs` (a page of 100) and `GET /jobs/{id}` read the `jobs` row and LEFT JOIN
`job_operations` (runtime limit, requeue link, stuck flag) and `job_scheduling` (gpu_type,
priority). On 100k jobs, a fifth of them with a row in each side table, this compares the
server-side execution time (EXPLAIN ANALYZE, timing off: the database's own work, free of
the client's round trip and of other load's scheduling noise) of the live queries with the
same reads without the joins. Run: `python -m bench job_reads`."""

from __future__ import annotations

import os
import re
import statistics
from typing import Final

import asyncpg

from bench.databases import fresh_database
from service.database import resolve_database_url
from service.sql import QUERIES

JOBS: Final = 100_000
ROUNDS: Final = 300
_OPS_COLUMNS: Final = "o.max_runtime_minutes, o.requeued_from::text, o.stuck_reason,"
_OPS_JOIN: Final = "LEFT JOIN job_operations o ON o.job_id = j.id"
_SCHED_COLUMNS: Final = "coalesce(s.gpu_type, 'h200'), coalesce(s.priority, 50)"
_SCHED_JOIN: Final = "LEFT JOIN job_scheduling s ON s.job_id = j.id"
_EXECUTION: Final = re.compile(r"Execution Time: ([\d.]+) ms")
FILL: Final = (
    """INSERT INTO jobs (id, user_id, user_email, kind, state, gpu_count, fireworks_payload,
                         created_at, version, last_position)
    SELECT gen_random_uuid(), ('00000000-0000-0000-0000-00000000000' || (i % 10))::uuid,
           'u@bench', 'SFT', 'SUCCESS', 4, '{"dataset": "d"}', now() - i * interval '1 s', 1, i
    FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO job_operations (job_id, max_runtime_minutes)
    SELECT id, 60 FROM jobs TABLESAMPLE BERNOULLI (20) REPEATABLE (1)""",
    """INSERT INTO job_scheduling (job_id, priority, gpu_type)
    SELECT id, 50, 'h200' FROM jobs TABLESAMPLE BERNOULLI (20) REPEATABLE (2)""",
    "ANALYZE",
)


def without(sql: str, *pieces: str) -> str:
    """`sql` with the given select items and joins taken out."""
    for piece in pieces:
        if piece not in sql:
            raise AssertionError(f"{piece!r} not in the live query: update bench.job_reads")
        sql = sql.replace(piece, "")
    return re.sub(r",\s*\nFROM", "\nFROM", sql)


def variants(name: str) -> dict[str, str]:
    live = QUERIES[name]
    plain = without(live, _OPS_COLUMNS, _OPS_JOIN, _SCHED_COLUMNS, _SCHED_JOIN)
    return {
        "no joins": plain,
        "job_scheduling only": without(live, _OPS_COLUMNS, _OPS_JOIN),
        "both (live)": live,
    }


async def _execution_ms(conn: asyncpg.Connection, sql: str, args: tuple[object, ...]) -> float:
    plan = await conn.fetch("EXPLAIN (ANALYZE, TIMING OFF) " + sql, *args)
    found = _EXECUTION.search(plan[-1][0])
    assert found is not None, plan[-1][0]
    return float(found.group(1))


async def measure(
    server_url: str, jobs: int = JOBS, rounds: int = ROUNDS
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    async with fresh_database(server_url) as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(FILL[0].replace("$1::int", str(int(jobs))))
            for sql in FILL[1:]:
                await conn.execute(sql)
            one = await conn.fetchval("SELECT id::text FROM jobs OFFSET $1 LIMIT 1", jobs // 2)
            member = "00000000-0000-0000-0000-000000000003"
            reads = {
                "GET /jobs page of 100 (member)": (
                    "api_jobs_page",
                    (member, None, None, None, None, None, 101),
                ),
                "GET /jobs/{id}": ("api_job_by_id", (one,)),
            }
            for label, (name, args) in reads.items():
                shapes = variants(name)
                times: dict[str, list[float]] = {shape: [] for shape in shapes}
                for _ in range(rounds):  # interleaved: the same conditions for each shape
                    for shape, sql in shapes.items():
                        times[shape].append(await _execution_ms(conn, sql, args))
                for shape, values in times.items():
                    out.append(
                        {
                            "name": f"{label}, {shape}",
                            "median_ms": round(statistics.median(values), 3),
                            "jobs": jobs,
                        }
                    )
        finally:
            await conn.close()
    return out


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py`; `ctx.database_url`, `ctx.job_reads_jobs`."""
    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = resolve_database_url(None)
    jobs = int(getattr(ctx, "job_reads_jobs", JOBS))
    return await measure(server_url, jobs, int(getattr(ctx, "job_reads_rounds", ROUNDS)))
