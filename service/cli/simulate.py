"""`ftq simulate TRACE.csv`: replay a workload trace under each policy in simulated time."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, cast

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from events.domain.scheduling import DEFAULT_RUNTIME_MINUTES, POLICIES, Limits, Policy, PolicyName
from events.domain.simulation import Outcome, TraceError, accuracy, measure_etas, metrics, simulate
from events.domain.simulation.scheduler import DomainPlanner
from events.domain.simulation.trace import TraceJob, parse_trace
from service.cli.app import app, err, fail, out, table
from service.simulation.plot import plot as draw


def _quota(text: str) -> dict[str, int]:
    try:
        if "=" not in text:
            return {"*": int(text)}
        return {k.strip(): int(v) for k, v in (p.split("=", 1) for p in text.split(","))}
    except ValueError:
        fail(f"--quota: {text!r} is not N or TYPE=N[,TYPE=N...]", 2)


def _cap(text: str | None, option: str) -> int | None:
    if text is None or text == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        fail(f"{option}: {text!r} is not an integer or 'none'", 2)
    if value < 0:
        fail(f"{option}: {value} is negative", 2)
    return value


def _not_negative(value: float, option: str) -> None:
    if not value >= 0:
        fail(f"{option}: {value} is negative", 2)


def limits_of(
    user_cap: str | None,
    small: str | None,
    big: str | None,
    big_job_gpus: int,
    big_job_reserve: int,
) -> Limits:
    """Size classes and caps from the options: `--user-cap` for both classes (default: no
    cap), `--user-cap-small`/`--user-cap-big` for one."""
    _not_negative(big_job_gpus, "--big-job-gpus")
    _not_negative(big_job_reserve, "--big-job-reserve")
    both = _cap(user_cap, "--user-cap")
    cap_small = both if small is None else _cap(small, "--user-cap-small")
    cap_big = both if big is None else _cap(big, "--user-cap-big")
    return Limits(big_job_gpus, cap_small, cap_big, big_job_reserve)


def planner_for(
    name: PolicyName, pools: dict[str, int], limits: Limits, policy: Policy, jobs: list[TraceJob]
) -> DomainPlanner:
    epoch = min((j.submitted_at for j in jobs), default=0.0)
    knobs = msgspec.structs.replace(policy, name=name)
    return DomainPlanner(limits, knobs, pools, epoch=epoch)


def load_trace(path: Path) -> list[TraceJob]:
    try:
        with path.open(newline="") as file:
            return parse_trace(file, str(path))
    except OSError as exc:
        fail(f"{path}: {exc.strerror}", 2)
    except TraceError as exc:
        fail(str(exc), 2)


@app.command("simulate")
def simulate_command(
    trace: Annotated[
        Path, typer.Argument(help="CSV: job_id,user,submitted_at,gpu_count,duration_s")
    ],
    quota: Annotated[str, typer.Option(help="GPUs: N, or TYPE=N,... per gpu_type")],
    policy: Annotated[
        list[str] | None, typer.Option(help="repeatable; default strict-fifo")
    ] = None,
    user_cap: Annotated[
        str | None, typer.Option(help="per-user PROGRESS cap, both classes (default none)")
    ] = None,
    big_job_gpus: Annotated[int, typer.Option(help="GPUs from which a job is big; 0 off")] = 0,
    user_cap_small: Annotated[str | None, typer.Option(help="cap on small jobs, or none")] = None,
    user_cap_big: Annotated[str | None, typer.Option(help="cap on big jobs, or none")] = None,
    big_job_reserve: Annotated[int, typer.Option(help="GPUs a big job must leave free")] = 0,
    half_life_hours: Annotated[float, typer.Option(help="fair-share usage half-life")] = 168.0,
    max_wait_hours: Annotated[float, typer.Option(help="fair-share: overdue after")] = 72.0,
    as_json: Annotated[bool, typer.Option("--json", help="metrics as JSON")] = False,
    per_job: Annotated[Path | None, typer.Option(help="write each job's submit/start/end")] = None,
    eta: Annotated[bool, typer.Option(help="measure ETA accuracy against the naive one")] = False,
    plot: Annotated[Path | None, typer.Option(help="PNG: queue, GPUs in use, wait CDF")] = None,
) -> None:
    """Replay TRACE under each policy and report waits, utilization and fairness."""
    policies = policy or ["strict-fifo"]
    for name in policies:
        if name not in POLICIES:
            fail(f"--policy: unknown {name!r} (choose from {', '.join(POLICIES)})", 2)
    pools = _quota(quota)
    limits = limits_of(user_cap, user_cap_small, user_cap_big, big_job_gpus, big_job_reserve)
    _not_negative(max_wait_hours, "--max-wait-hours")
    if not half_life_hours > 0:
        fail(f"--half-life-hours: {half_life_hours} (must be > 0)", 2)
    knobs = Policy(half_life_hours=half_life_hours, max_wait_hours=max_wait_hours)
    jobs = load_trace(trace)
    capacity = sum(pools.values())
    report: dict[str, object] = {"quota": capacity if "*" in pools else pools, "jobs": len(jobs)}
    results: dict[str, object] = {}
    rows: list[tuple[str, TraceJob, float, float]] = []
    outcomes: dict[str, Outcome] = {}
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=err, disable=not sys.stderr.isatty(), transient=True)  # fmt: skip
    with bar:
        for name in policies:
            task = bar.add_task(name, total=len(jobs))

            def tick(done: int, task: object = task) -> None:
                bar.update(task, completed=done)  # type: ignore[arg-type]

            planner = planner_for(cast(PolicyName, name), pools, limits, knobs, jobs)
            if eta:
                outcome, records = measure_etas(
                    jobs, planner, pools, default_runtime_s=DEFAULT_RUNTIME_MINUTES * 60.0,
                    on_moment=tick,
                )  # fmt: skip
            else:
                outcome = simulate(jobs, planner, pools, on_moment=tick, timeline=plot is not None)
            outcomes[name] = outcome
            entry = msgspec.to_builtins(metrics(outcome, capacity))
            if eta:
                entry["eta"] = msgspec.to_builtins(accuracy(records))
            results[name] = entry
            rows += [(name, r.job, r.start, r.end) for r in outcome.runs]
    report["policies"] = results
    if per_job is not None:
        with per_job.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(
                ["policy", "job_id", "user", "gpu_count", "submitted_at", "start", "end"]
            )
            writer.writerows((p, j.job_id, j.user, j.gpu_count, j.submitted_at, s, e)
                             for p, j, s, e in rows)  # fmt: skip
    if plot is not None:
        draw(outcomes, plot)
    if as_json:
        out.print(json.dumps(report, indent=2, sort_keys=True), markup=False, highlight=False)
        return
    result = table("metric", *policies, title=f"{trace.name}: {len(jobs)} jobs, quota {quota}")
    for key in next(iter(results.values())):  # type: ignore[attr-defined]
        if key != "eta":
            result.add_row(key, *(_cell(results[p][key]) for p in policies))  # type: ignore[index]
    out.print(result)


def _cell(value: object) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)
