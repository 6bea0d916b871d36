"""`ftq simulate TRACE.csv`: replay a workload trace under each policy in simulated time."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from events.domain.simulation import Outcome, TraceError, accuracy, measure_etas, metrics, simulate
from events.domain.simulation.trace import TraceJob, parse_trace
from service.cli.app import app, err, fail, out, table
from service.simulation.live_planner import DEFAULT_RUNTIME_S, POLICIES, LivePlanner
from service.simulation.plot import plot as draw


def _quota(text: str) -> dict[str, int]:
    try:
        if "=" not in text:
            return {"*": int(text)}
        return {k.strip(): int(v) for k, v in (p.split("=", 1) for p in text.split(","))}
    except ValueError:
        fail(f"--quota: {text!r} is not N or TYPE=N[,TYPE=N...]", 2)


def _cap(text: str | None) -> int | None:
    if text is None or text == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        fail(f"--user-cap: {text!r} is not an integer or 'none'", 2)
    if value < 0:
        fail(f"--user-cap: {value} is negative", 2)
    return value


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
    user_cap: Annotated[str | None, typer.Option(help="per-user PROGRESS cap, or none")] = None,
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
    pools, cap = _quota(quota), _cap(user_cap)
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

            planner = LivePlanner(name, capacity, cap)
            if eta:
                outcome, records = measure_etas(
                    jobs, planner, pools, default_runtime_s=DEFAULT_RUNTIME_S, on_moment=tick
                )
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
