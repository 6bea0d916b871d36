"""Benchmark: `ftq simulate` speed and the policy comparisons of the simulation issue, all
through the domain planner (`events.domain.scheduling`) the admission loop runs.

Speed on the shipped Philly trace (quota 512) and on two 100k-job traces resampled from it:
- `scaled`: arrival gaps, sizes, durations and users drawn independently from the trace,
  gaps divided and the quota multiplied by the same factor (n / 1,455), users replicated;
  the offered load per GPU is the trace's, but ~69 independent streams over a ~69x pool
  smooth out the bursts that make the trace queue (statistical multiplexing), so it barely
  queues;
- `days`: whole days of the trace (their jobs at their offsets within the day, users
  kept) drawn with replacement and laid end to end until 100k jobs, at quota 512: the same
  offered load and the same bursts, over a longer span (factor 1 on the quota).
Live ETAs: one rebuild of `service.eta`'s forecast with 10k QUEUED jobs (and 100k finished
feeding the estimator), on a fresh database.
Run: `python -m bench simulate` (or `python -m bench.simulate [--live-eta]`)."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Final

import asyncpg

from events.domain.scheduling import DEFAULT_RUNTIME_MINUTES, POLICIES, Limits, Policy, PolicyName
from events.domain.simulation import Metrics, accuracy, measure_etas, metrics, simulate
from events.domain.simulation.scheduler import DomainPlanner
from events.domain.simulation.trace import TraceJob, parse_trace
from service.database import resolve_database_url

TRACE: Final = Path(__file__).parent / "data" / "philly-2017-sep-oct.csv"
QUOTA: Final = 512
NO_CAPS: Final = Limits(cap_small=None, cap_big=None)
OLD_RULES: Final = Limits(big_job_gpus=8, cap_small=2, cap_big=1, big_job_reserve=4)
DAY: Final = 86400.0
Row = dict[str, object]


def resample(jobs: list[TraceJob], n: int, seed: int = 16) -> tuple[list[TraceJob], float]:
    """`scaled`: `n` i.i.d. jobs at the trace's load per GPU; returns jobs and the factor."""
    rng = random.Random(seed)
    factor = n / len(jobs)
    ordered = sorted(jobs, key=lambda j: j.submitted_at)
    gaps = [b.submitted_at - a.submitted_at for a, b in itertools.pairwise(ordered)]
    replicas = math.ceil(factor)
    at = ordered[0].submitted_at
    out = []
    for k in range(n):
        src = rng.choice(ordered)
        at += rng.choice(gaps) / factor
        out.append(TraceJob(job_id=f"r{k:06}", user=f"{src.user}-{rng.randrange(replicas)}",
                            submitted_at=round(at), gpu_count=src.gpu_count,
                            duration_s=src.duration_s))  # fmt: skip
    return out, factor


def resample_days(jobs: list[TraceJob], n: int, seed: int = 16) -> list[TraceJob]:
    """`days`: whole days of the trace, drawn with replacement, end to end (see above)."""
    rng = random.Random(seed)
    t0 = min(j.submitted_at for j in jobs)
    days: dict[int, list[TraceJob]] = defaultdict(list)
    for j in jobs:
        days[int((j.submitted_at - t0) // DAY)].append(j)
    span = max(days) + 1
    keys = list(range(span))  # empty days too: the trace's idle days are part of its load
    out: list[TraceJob] = []
    day = 0
    while len(out) < n:
        for src in sorted(days.get(rng.choice(keys), ()), key=lambda j: j.submitted_at):
            offset = (src.submitted_at - t0) % DAY
            out.append(TraceJob(job_id=f"d{len(out):06}", user=src.user,
                                submitted_at=t0 + day * DAY + offset, gpu_count=src.gpu_count,
                                duration_s=src.duration_s, kind=src.kind))  # fmt: skip
            if len(out) == n:
                break
        day += 1
    return out


def run_policy(
    jobs: list[TraceJob], name: PolicyName, quota: int, limits: Limits = NO_CAPS
) -> tuple[Metrics, float]:
    epoch = min(j.submitted_at for j in jobs)
    planner = DomainPlanner(limits, Policy(name), {"*": quota}, epoch=epoch)
    t0 = time.perf_counter()
    out = simulate(jobs, planner, {"*": quota})
    return metrics(out, quota), time.perf_counter() - t0


def _figures(m: Metrics) -> dict[str, object]:
    return {
        "mean_wait_s": round(m.mean_wait_s),
        "max_wait_s": round(m.max_wait_s),
        "utilization": round(m.utilization, 3),
        "jain_slowdown": round(m.jain_slowdown, 3),
    }


def _speed(
    name: str, jobs: list[TraceJob], quota: int, target_s: float, policies: tuple[PolicyName, ...]
) -> tuple[list[dict[str, object]], dict[str, Metrics]]:
    rows: list[dict[str, object]] = []
    found: dict[str, Metrics] = {}
    for policy in policies:
        m, seconds = run_policy(jobs, policy, quota)
        found[policy] = m
        rows.append({
            "bench": f"simulate.speed_{name}_{policy}", "jobs": len(jobs), "quota": quota,
            "value": round(seconds, 3), "unit": "s", "target": f"< {target_s:g} s",
            "ok": seconds < target_s, **_figures(m),
        })  # fmt: skip
    return rows, found


def _comparisons(jobs: list[TraceJob], plain: dict[str, Metrics]) -> list[dict[str, object]]:
    old, _ = run_policy(jobs, "strict-fifo", QUOTA, OLD_RULES)
    fair, _ = run_policy(jobs, "fair-share", QUOTA, NO_CAPS)
    lower = 1 - fair.mean_wait_s / old.mean_wait_s if old.mean_wait_s else 0.0
    rows: list[dict[str, object]] = [{
        "bench": "simulate.fair_share_vs_old_rules", "value": round(lower, 3),
        "unit": "mean wait lower by", "target": ">= 0.30, utilization and jain not lower",
        "ok": lower >= 0.3 and fair.utilization >= old.utilization
        and fair.jain_slowdown >= old.jain_slowdown,
        "fair_share": _figures(fair), "old_rules": _figures(old),
    }]  # fmt: skip
    for caps, limits in (("no caps", NO_CAPS), ("old rules' caps", OLD_RULES)):
        if limits is NO_CAPS:
            strict, reserve, backfill = (plain[p] for p in ("strict-fifo", "reserve", "backfill"))
        else:
            strict = old
            reserve, _ = run_policy(jobs, "reserve", QUOTA, limits)
            backfill, _ = run_policy(jobs, "backfill", QUOTA, limits)
        ok = (reserve.mean_wait_s < strict.mean_wait_s
              and reserve.max_wait_s <= strict.max_wait_s * 1.01)  # fmt: skip
        rows.append({
            "bench": "simulate.reserve_vs_strict", "caps": caps,
            "value": round(reserve.max_wait_s / strict.max_wait_s, 3) if strict.max_wait_s else 1,
            "unit": "max wait reserve/strict", "target": "mean wait lower, max wait <= 1.01x",
            "ok": ok, "reserve": _figures(reserve), "strict_fifo": _figures(strict),
            "backfill_max_wait_s": round(backfill.max_wait_s),
        })  # fmt: skip
    return rows


def _eta(jobs: list[TraceJob]) -> dict[str, object]:
    epoch = min(j.submitted_at for j in jobs)
    planner = DomainPlanner(NO_CAPS, Policy("strict-fifo"), {"*": QUOTA}, epoch=epoch)
    t0 = time.perf_counter()
    _, records = measure_etas(jobs, planner, {"*": QUOTA},
                              default_runtime_s=DEFAULT_RUNTIME_MINUTES * 60.0)  # fmt: skip
    eta = accuracy(records)
    ratio = eta.ftq_median_abs_error_h / eta.naive_median_abs_error_h
    return {
        "bench": "simulate.eta_strict_fifo", "value": round(ratio, 3), "unit": "ftq/naive",
        "target": "<= 0.7", "ok": ratio <= 0.7, "jobs": eta.jobs,
        "ftq_median_abs_error_h": round(eta.ftq_median_abs_error_h, 2),
        "naive_median_abs_error_h": round(eta.naive_median_abs_error_h, 2),
        "ftq_median_rel_error": round(eta.ftq_median_rel_error, 3),
        "naive_median_rel_error": round(eta.naive_median_rel_error, 3),
        "ftq_unestimated": eta.ftq_unestimated, "seconds": round(time.perf_counter() - t0, 2),
    }  # fmt: skip


async def _live_eta(ctx: object, queued: int = 10_000, finished: int = 100_000) -> list[Row]:
    """Live ETAs (service.eta): one rebuild (projection reads + forecast) with `queued`
    QUEUED jobs of 21 users and `finished` finished ones (their runtimes feed the
    estimator: all of them on the first rebuild, the new ones after), per live policy."""
    from bench.databases import fresh_database  # noqa: PLC0415
    from bench.ui import _seed  # noqa: PLC0415
    from service.capacity import CapacityReader  # noqa: PLC0415
    from service.eta import EtaForecaster  # noqa: PLC0415
    from service.settings import Settings  # noqa: PLC0415

    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = await asyncio.to_thread(resolve_database_url, None)
    rows: list[Row] = []
    async with (
        fresh_database(server_url) as db_url,
        asyncpg.create_pool(db_url, min_size=1, max_size=2) as pool,
    ):
        await _seed(pool, queued - 1, finished)
        for policy in ("strict-fifo", "backfill"):
            settings = Settings(database_url=db_url, fireworks_gpu_quota=QUOTA, policy=policy)
            eta = EtaForecaster(pool, settings, CapacityReader(None, settings), None)
            first = await eta.rebuild()
            times = [(await eta.rebuild()).build_s for _ in range(5)]
            steady = statistics.median(times)
            rows.append({
                "bench": f"simulate.live_eta_rebuild_{policy}", "queued": first.queued,
                "with_eta": len(first.etas), "value": round(steady, 3), "unit": "s",
                "target": "< 1 s", "ok": steady < 1.0 and len(first.etas) == first.queued,
                "first_rebuild_s": round(first.build_s, 3), "finished": finished,
            })  # fmt: skip
    return rows


async def run(ctx: object) -> list[dict[str, object]]:
    with TRACE.open(newline="") as file:
        jobs = parse_trace(file, str(TRACE))
    if getattr(ctx, "simulate_live_only", False):
        return await _live_eta(ctx)
    rows, plain = _speed("philly", jobs, QUOTA, 5, POLICIES)
    scaled, factor = resample(jobs, 100_000)
    rows += _speed("resampled_100k_scaled", scaled, round(QUOTA * factor), 120, POLICIES)[0]
    rows += _speed("resampled_100k_days", resample_days(jobs, 100_000), QUOTA, 120, POLICIES)[0]
    rows += _comparisons(jobs, plain)
    rows.append(_eta(jobs))
    rows += await _live_eta(ctx)
    return rows


if __name__ == "__main__":
    import json
    import sys
    from types import SimpleNamespace

    live = SimpleNamespace(simulate_live_only="--live-eta" in sys.argv[1:])
    print(json.dumps(asyncio.run(run(live)), indent=2))
