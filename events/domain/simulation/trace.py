"""Workload traces: `job_id,user,submitted_at,gpu_count,duration_s[,kind][,gpu_type]`.

Parsing is pure (text in, jobs out); a bad row raises `TraceError` naming the line and the
column, so that the shell can print one line and simulate nothing."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

import msgspec

REQUIRED: Final = ("job_id", "user", "submitted_at", "gpu_count", "duration_s")
OPTIONAL: Final = ("kind", "gpu_type")
DEFAULT_KIND: Final = "SFT"
DEFAULT_GPU_TYPE: Final = "h200"


class TraceJob(msgspec.Struct, frozen=True, gc=False):
    """One job of a workload. Times are seconds since the epoch (UTC)."""

    job_id: str
    user: str
    submitted_at: float
    gpu_count: int
    duration_s: float
    kind: str = DEFAULT_KIND
    gpu_type: str = DEFAULT_GPU_TYPE
    max_runtime_minutes: int | None = None  # a live job's own limit (caps its estimate)
    priority: int = 50  # a live job's priority (a trace's jobs all have the default)


class TraceError(ValueError):
    """A trace that cannot be simulated: where (file, line, column) and why."""

    def __init__(self, source: str, line: int, column: int | None, message: str) -> None:
        where = f"{source}:{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {message}")
        self.source, self.line, self.column = source, line, column


def parse_trace(lines: Iterable[str], source: str = "<trace>") -> list[TraceJob]:
    """The jobs of a CSV trace, in file order; the first bad cell raises `TraceError`."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise TraceError(source, 1, None, "empty trace: expected a header row")
    names = [h.strip() for h in header]
    for name in REQUIRED:
        if name not in names:
            raise TraceError(
                source, 1, None, f"missing column {name!r} (the header has {', '.join(names)})"
            )
    index: dict[str, int] = {n: names.index(n) for n in (*REQUIRED, *OPTIONAL) if n in names}
    seen: dict[str, int] = {}
    jobs: list[TraceJob] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        cells = _cells(row, index, source, line)
        job_id = cells["job_id"]
        if job_id in seen:
            raise TraceError(
                source, line, index["job_id"] + 1,
                f"job_id: duplicate {job_id!r} (first on line {seen[job_id]})",
            )  # fmt: skip
        seen[job_id] = line
        jobs.append(
            TraceJob(
                job_id=job_id,
                user=cells["user"],
                submitted_at=_timestamp(cells["submitted_at"], source, line, index),
                gpu_count=_gpu_count(cells["gpu_count"], source, line, index),
                duration_s=_duration(cells["duration_s"], source, line, index),
                kind=cells.get("kind") or DEFAULT_KIND,
                gpu_type=cells.get("gpu_type") or DEFAULT_GPU_TYPE,
            )
        )
    return jobs


def _cells(row: list[str], index: dict[str, int], source: str, line: int) -> dict[str, str]:
    cells: dict[str, str] = {}
    for name, i in index.items():
        value = row[i].strip() if i < len(row) else ""
        if not value and name in REQUIRED:
            raise TraceError(source, line, i + 1, f"{name}: missing value")
        cells[name] = value
    return cells


def _timestamp(text: str, source: str, line: int, index: dict[str, int]) -> float:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise TraceError(
            source, line, index["submitted_at"] + 1,
            f"submitted_at: {text!r} is not an ISO 8601 time",
        ) from None  # fmt: skip
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def _gpu_count(text: str, source: str, line: int, index: dict[str, int]) -> int:
    column = index["gpu_count"] + 1
    try:
        value = int(text)
    except ValueError:
        raise TraceError(source, line, column, f"gpu_count: {text!r} is not an integer") from None
    if value < 1:
        raise TraceError(source, line, column, f"gpu_count: {value} (must be at least 1)")
    return value


def _duration(text: str, source: str, line: int, index: dict[str, int]) -> float:
    column = index["duration_s"] + 1
    try:
        value = float(text)
    except ValueError:
        raise TraceError(source, line, column, f"duration_s: {text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise TraceError(source, line, column, f"duration_s: {text} (must be a finite number ≥ 0)")
    return value
