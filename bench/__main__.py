"""Run the benchmarks: `python -m bench [names...] [--quick]`.

One context for every module: `database_url` is a database created for the run on
DATABASE_URL's server, or on an embedded server in a temporary directory when DATABASE_URL is
unset; it is dropped (and the embedded server stopped) at the end, even on failure. Each
module prints one table and writes `bench/results/<module>.json`; `summary.json` collects
them. A failing module is reported and the run goes on; the exit code is 1 if any failed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Final, cast

from bench.databases import fresh_database
from service.database import resolve_database_url, stop_embedded

MODULES: Final = (
    "event_store",
    "append_costs",
    "replay",
    "rebuild",
    "admission",
    "streams",
    "http_api",
    "job_reads",
    "batch_submit",
    "simulate",
    "ui",
)
RESULTS_DIR: Final = Path(__file__).parent / "results"
QUICK: Final[dict[str, object]] = {
    "event_store_seconds": 1.0,
    "event_store_warmup": 0.2,
    "event_store_rounds": 1,
    "append_costs_rounds": 1,
    "append_costs_prefill": 10_000,
    "replay_events": 100_000,
    "admission_jobs": 50,
    "stream_events": 100,
    "stream_clients": 3,
    "http_seconds": 1,
    "batch_jobs": 100,
    "job_reads_jobs": 10_000,
    "job_reads_rounds": 50,
    "ui_queued": 500,
    "ui_finished": 2_000,
    "ui_sessions": 20,
}
FULL: Final[dict[str, object]] = {
    "event_store_seconds": 2.0,
    "event_store_warmup": 0.5,
    "event_store_rounds": 7,
}
# Where a row's headline number may be, in order of preference, with its unit.
VALUE_KEYS: Final = (
    ("value", None),
    ("events_per_s", "events/s"),
    ("rps", "req/s"),
    ("p99_ms", "ms p99"),
    ("median_ms", "ms median"),
    ("best_ms", "ms best"),
    ("p50_ms", "ms p50"),
)
SHOWN: Final = {"name", "bench", "unit", "target", "ratio", "ok"}

Row = dict[str, object]
RunFn = Callable[[object], Awaitable[list[Row]]]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of {', '.join(MODULES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {MODULES}")
    return args


@contextlib.asynccontextmanager
async def _run_database() -> AsyncIterator[str]:
    """A fresh database for the run; dropped afterwards, with the embedded server if any."""
    temp_dir: str | None = None
    server_url = os.environ.get("DATABASE_URL")
    try:
        if not server_url:
            temp_dir = tempfile.mkdtemp(prefix="ftq-bench-pg-")
            server_url = await asyncio.to_thread(resolve_database_url, None, Path(temp_dir) / "pg")
        async with fresh_database(server_url, migrated=False, prefix="ftq_bench_run_") as url:
            yield url
    finally:
        if temp_dir is not None:
            await asyncio.to_thread(stop_embedded)
            shutil.rmtree(temp_dir, ignore_errors=True)


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "PASS" if value else "FAIL"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cells(row: Row) -> list[str]:
    """name, value, unit, target, ratio / pass, other fields."""
    name = row.get("name", row.get("bench", "?"))
    value: object = None
    unit = row.get("unit")
    used: set[str] = set()
    for key, key_unit in VALUE_KEYS:
        if key in row:
            value, used = row[key], {key}
            unit = unit if key_unit is None else key_unit
            break
    target = row.get("target")
    if target is None:
        targets = [k for k in row if k.startswith("target") and row[k] is not None]
        target = ", ".join(f"{k.removeprefix('target_')}={_fmt(row[k])}" for k in targets)
        used.update(targets)
    verdict = " ".join(part for part in (_fmt(row.get("ratio")), _fmt(row.get("ok"))) if part)
    other = ", ".join(
        f"{k}={_fmt(v)}"
        for k, v in row.items()
        if k not in SHOWN and k not in used and v is not None
    )
    return [str(name), _fmt(value), _fmt(unit), _fmt(target), verdict, other]


HEADERS: Final = ["name", "value", "unit", "target", "ratio / pass", "other"]


def _print_table(title: str, rows: list[Row]) -> None:
    body = [_cells(r) for r in rows]
    try:
        from rich.console import Console  # noqa: PLC0415 - optional pretty output
        from rich.table import Table  # noqa: PLC0415
    except ImportError:
        widths = [max(len(c) for c in col) for col in zip(HEADERS, *body, strict=False)]
        print(f"\n{title}")
        for line in (HEADERS, *body):
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        return
    table = Table(title=title, title_justify="left")
    for header in HEADERS:
        table.add_column(header, justify="right" if header == "value" else "left")
    for cells in body:
        table.add_row(*cells)
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)


def _write(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


async def _run_module(name: str, ctx: SimpleNamespace) -> dict[str, object]:
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
        run = cast(RunFn, module.run)
        rows = [dict(r) for r in await run(ctx)]
    except Exception as exc:  # one failing module must not stop the run
        traceback.print_exc()
        print(f"FAILED bench.{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {
            "module": name,
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "seconds": round(time.perf_counter() - started, 1),
        }
    _print_table(f"bench.{name}", rows)
    result: dict[str, object] = {
        "module": name,
        "ok": True,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    _write(RESULTS_DIR / f"{name}.json", result)
    return result


async def main(argv: list[str]) -> int:
    args = _parse(argv)
    names = [n for n in MODULES if not args.names or n in args.names]
    results: list[dict[str, object]] = []
    started = datetime.now(UTC)
    async with _run_database() as database_url:
        ctx = SimpleNamespace(database_url=database_url, **(QUICK if args.quick else FULL))
        for name in names:
            print(f"\n== bench.{name}", flush=True)
            results.append(await _run_module(name, ctx))
    failed = [str(r["module"]) for r in results if not r["ok"]]
    summary: dict[str, Any] = {
        "started_at": started.isoformat(),
        "quick": args.quick,
        "server": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "modules": results,
        "failed": failed,
    }
    _write(RESULTS_DIR / "summary.json", summary)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
