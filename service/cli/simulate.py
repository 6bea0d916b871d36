"""`ftq simulate TRACE.csv`: replay a workload trace under each policy in simulated time."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final, cast

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from events.domain.scheduling import DEFAULT_RUNTIME_MINUTES, POLICIES, Limits, Policy, PolicyName
from events.domain.simulation import Outcome, TraceError, accuracy, measure_etas, metrics, simulate
from events.domain.simulation.history import History, LogTrace, log_trace
from events.domain.simulation.scheduler import DomainPlanner
from events.domain.simulation.trace import TraceJob, parse_trace
from service.cli.app import app, database, err, fail, out, run, settings_or_exit, table
from service.clock import utcnow
from service.simulation.from_log import read_history
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


def _time(text: str | None, option: str) -> float | None:
    """An ISO 8601 time (UTC unless it says otherwise), or N`d`/N`h` before now."""
    if text is None:
        return None
    unit = {"d": 86400.0, "h": 3600.0}.get(text[-1:])
    if unit is not None and text[:-1].isdigit():
        return utcnow().timestamp() - int(text[:-1]) * unit
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option}: {text!r} is not an ISO 8601 time or Nd/Nh", 2)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def from_log(since: float | None, until: float | None) -> tuple[LogTrace, History]:
    """The deployment's history (it needs the database: an operator's command)."""
    settings = settings_or_exit()

    async def go() -> History:
        async with database(settings, migrated=False) as pool, pool.acquire() as conn:
            return await read_history(conn)

    history = run(go())
    now = max(utcnow().timestamp(), history.last)  # jobs still running: estimated from now
    return log_trace(history, now if until is None else min(until, now), since=since,
                     until=until), history  # fmt: skip


@app.command("simulate")
def simulate_command(
    trace: Annotated[
        Path | None,
        typer.Argument(help="CSV: job_id,user,submitted_at,gpu_count,duration_s (or --from-log)"),
    ] = None,
    quota: Annotated[
        str | None, typer.Option(help="GPUs: N, or TYPE=N,... per gpu_type (log: as recorded)")
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(help="repeatable; default strict-fifo (log: the policy recorded)"),
    ] = None,
    user_cap: Annotated[
        str | None,
        typer.Option(help="per-user PROGRESS cap, both classes (default none; log: FTQ_USER_CAP)"),
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
    log: Annotated[
        bool, typer.Option("--from-log", help="this deployment's own history (needs DATABASE_URL)")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="--from-log: jobs submitted from (ISO time or Nd/Nh ago)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="--from-log: jobs submitted before (ISO time or Nd/Nh ago)")
    ] = None,
) -> None:
    """Replay TRACE (or this deployment's log) under each policy and report waits,
    utilization and fairness."""
    for name in policy or []:
        if name not in POLICIES:
            fail(f"--policy: unknown {name!r} (choose from {', '.join(POLICIES)})", 2)
    if (trace is None) == (not log):
        fail("give a TRACE.csv or --from-log (not both)", 2)
    if not log and (since is not None or until is not None):
        fail("--since/--until go with --from-log", 2)
    if not log and quota is None:
        fail("--quota is required with a trace", 2)
    _not_negative(max_wait_hours, "--max-wait-hours")
    if not half_life_hours > 0:
        fail(f"--half-life-hours: {half_life_hours} (must be > 0)", 2)
    knobs = Policy(half_life_hours=half_life_hours, max_wait_hours=max_wait_hours)
    caps = (user_cap, user_cap_small, user_cap_big, big_job_gpus, big_job_reserve)
    if trace is not None:
        work = _trace_workload(trace, cast(str, quota), policy, caps)
    else:
        work = _log_workload(quota, policy, caps, _time(since, "--since"), _time(until, "--until"))
    report, outcomes, rows = _run_policies(work, knobs, eta=eta, timeline=plot is not None)
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
    results = cast(dict[str, dict[str, object]], report["policies"])
    columns = list(work.policies)
    if "recorded" in report:
        results = {**results, "recorded": cast(dict[str, object], report["recorded"])}
        columns.append("recorded")
    result = table("metric", *columns, title=work.title)
    for key in results[columns[0]]:
        if key != "eta":
            result.add_row(key, *(_cell(results[p].get(key, "")) for p in columns))
    if eta:  # ETA accuracy: ftq's forecast against the naive estimate, per policy
        for key in ETA_ROWS:
            result.add_row(f"eta {key}", *(_cell(_eta_of(results[p]).get(key, ""))
                                           for p in columns))  # fmt: skip
    out.print(result)


ETA_ROWS: Final = (
    "jobs", "waited_10min", "ftq_median_abs_error_h", "naive_median_abs_error_h",
    "ftq_median_rel_error", "naive_median_rel_error", "ftq_unestimated",
)  # fmt: skip


def _eta_of(entry: dict[str, object]) -> dict[str, object]:
    found = entry.get("eta")
    return cast(dict[str, object], found) if isinstance(found, dict) else {}


class Workload(msgspec.Struct, frozen=True):
    jobs: list[TraceJob]
    pools: dict[str, int]
    limits: Limits
    policies: list[str]
    title: str
    recorded: Outcome | None = None  # --from-log: what really happened
    weights: dict[str, float] = msgspec.field(default_factory=dict)  # fair-share shares


Caps = tuple[str | None, str | None, str | None, int, int]


def _trace_workload(trace: Path, quota: str, policy: list[str] | None, caps: Caps) -> Workload:
    jobs = load_trace(trace)
    return Workload(jobs, _quota(quota), limits_of(*caps), policy or ["strict-fifo"],
                    f"{trace.name}: {len(jobs)} jobs, quota {quota}")  # fmt: skip


def _log_workload(
    quota: str | None,
    policy: list[str] | None,
    caps: Caps,
    since: float | None,
    until: float | None,
) -> Workload:
    """The log's jobs under the live rules: the quota per GPU type and the policy the log
    recorded, the deployment's size classes and caps (FTQ_USER_CAP...) with the per-user caps
    and shares set in the log; each unless given as options."""
    logged, history = from_log(since, until)
    if quota is None and not history.quotas:
        fail("--from-log: no admission in the log records a quota; give --quota", 2)
    pools = _quota(quota) if quota is not None else dict(history.quotas)
    if any(c is not None for c in caps[:3]) or caps[3] or caps[4]:
        limits = limits_of(*caps)
    else:
        limits = settings_or_exit().limits(history.caps)
    live = history.policy if history.policy in POLICIES else "strict-fifo"
    title = (f"event log: {len(logged.jobs)} jobs ({logged.finished} finished, "
             f"{logged.estimated_running} running and {logged.estimated_queued} queued "
             f"estimated, {logged.left_out_cancelled} cancelled while queued left out), "
             f"quota {sum(pools.values())}")  # fmt: skip
    return Workload(logged.jobs, pools, limits, policy or [cast(str, live)], title,
                    logged.recorded, history.weights)  # fmt: skip


def _run_policies(
    work: Workload, knobs: Policy, *, eta: bool, timeline: bool
) -> tuple[dict[str, object], dict[str, Outcome], list[tuple[str, TraceJob, float, float]]]:
    jobs, pools = work.jobs, work.pools
    capacity = sum(pools.values())
    one_pool = len(pools) == 1
    report: dict[str, object] = {"quota": capacity if one_pool else pools, "jobs": len(jobs)}
    knobs = msgspec.structs.replace(knobs, weights=work.weights)
    results: dict[str, object] = {}
    rows: list[tuple[str, TraceJob, float, float]] = []
    outcomes: dict[str, Outcome] = {}
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=err, disable=not sys.stderr.isatty(), transient=True)  # fmt: skip
    with bar:
        for name in work.policies:
            task = bar.add_task(name, total=len(jobs))

            def tick(done: int, task: TaskID = task) -> None:
                bar.update(task, completed=done)

            planner = planner_for(cast(PolicyName, name), pools, work.limits, knobs, jobs)
            if eta:
                outcome, records = measure_etas(
                    jobs, planner, pools, default_runtime_s=DEFAULT_RUNTIME_MINUTES * 60.0,
                    on_moment=tick,
                )  # fmt: skip
            else:
                outcome = simulate(jobs, planner, pools, on_moment=tick, timeline=timeline)
            outcomes[name] = outcome
            entry = msgspec.to_builtins(metrics(outcome, capacity))
            if eta:
                entry["eta"] = msgspec.to_builtins(accuracy(records))
            results[name] = entry
            rows += [(name, r.job, r.start, r.end) for r in outcome.runs]
    report["policies"] = results
    if work.recorded is not None:
        report["recorded"] = msgspec.to_builtins(metrics(work.recorded, capacity))
        rows += [("recorded", r.job, r.start, r.end) for r in work.recorded.runs]
    return report, outcomes, rows


def _cell(value: object) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)
