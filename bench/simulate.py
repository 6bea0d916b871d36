"""Benchmark: `ftq simulate` speed and the policy comparisons of the simulation issue.

Speed on the shipped Philly trace (quota 512) and on a 100k-job trace resampled from it
(arrival gaps, sizes, durations and users drawn from the trace, gaps divided and the quota
multiplied by the same factor, users replicated so each keeps its load), per policy.
Policy comparisons need policies the live planner does not have yet (fair-share, reserve,
size classes): such rows are reported as not run, never as passed.
Run: `python -m bench.simulate`."""

from __future__ import annotations

import itertools
import math
import random
import time
from pathlib import Path
from typing import Final

from events.domain.simulation import accuracy, measure_etas, metrics, simulate
from events.domain.simulation.trace import TraceJob, parse_trace
from service.simulation.live_planner import DEFAULT_RUNTIME_S, POLICIES, LivePlanner

TRACE: Final = Path(__file__).parent / "data" / "philly-2017-sep-oct.csv"
QUOTA: Final = 512


def resample(jobs: list[TraceJob], n: int, seed: int = 16) -> tuple[list[TraceJob], float]:
    """`n` jobs at the trace's offered load scaled by n/len(jobs); returns jobs and factor."""
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


def _speed(name: str, jobs: list[TraceJob], quota: int, target_s: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for policy in POLICIES:
        t0 = time.perf_counter()
        out = simulate(jobs, LivePlanner(policy, quota, None), {"*": quota})
        seconds = time.perf_counter() - t0
        m = metrics(out, quota)
        rows.append({
            "bench": f"simulate.speed_{name}_{policy}", "jobs": len(jobs), "quota": quota,
            "value": round(seconds, 3), "unit": "s", "target": f"< {target_s:g} s",
            "ok": seconds < target_s, "mean_wait_s": round(m.mean_wait_s),
            "max_wait_s": round(m.max_wait_s), "utilization": round(m.utilization, 3),
        })  # fmt: skip
    return rows


def _not_run(name: str, needs: str) -> dict[str, object]:
    return {"bench": f"simulate.{name}", "value": "not run", "ok": False, "needs": needs}


async def run(ctx: object) -> list[dict[str, object]]:
    with TRACE.open(newline="") as file:
        jobs = parse_trace(file, str(TRACE))
    rows = _speed("philly", jobs, QUOTA, 5)
    big, factor = resample(jobs, 100_000)
    rows += _speed("resampled_100k", big, round(QUOTA * factor), 120)
    needs = "the policies branch's planner (fair-share, reserve, size classes), not merged yet"
    rows.append(_not_run("fair_share_vs_old_rules", needs))
    rows.append(_not_run("reserve_vs_strict", needs))
    backfill = metrics(simulate(jobs, LivePlanner("backfill", QUOTA, None), {"*": QUOTA}), QUOTA)
    rows.append({"bench": "simulate.backfill_max_wait", "value": round(backfill.max_wait_s),
                 "unit": "s", "quota": QUOTA})  # fmt: skip
    t0 = time.perf_counter()
    _, records = measure_etas(jobs, LivePlanner("strict-fifo", QUOTA, None), {"*": QUOTA},
                              default_runtime_s=DEFAULT_RUNTIME_S)  # fmt: skip
    eta = accuracy(records)
    ratio = eta.ftq_median_abs_error_h / eta.naive_median_abs_error_h
    rows.append({
        "bench": "simulate.eta_strict_fifo", "value": round(ratio, 3), "unit": "ftq/naive",
        "target": "<= 0.7", "ok": ratio <= 0.7, "jobs": eta.jobs,
        "ftq_median_abs_error_h": round(eta.ftq_median_abs_error_h, 2),
        "naive_median_abs_error_h": round(eta.naive_median_abs_error_h, 2),
        "ftq_median_rel_error": round(eta.ftq_median_rel_error, 3),
        "naive_median_rel_error": round(eta.naive_median_rel_error, 3),
        "seconds": round(time.perf_counter() - t0, 2),
    })  # fmt: skip
    return rows


if __name__ == "__main__":
    import asyncio
    import json

    print(json.dumps(asyncio.run(run(None)), indent=2))
