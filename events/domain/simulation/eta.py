"""ETAs of queued jobs: a forward simulation of the current state with estimated runtimes
(ftq's ETA), and the naive estimate it is measured against.

Nothing here sees a job's real duration: running jobs end after the planner's remaining
time for a job that has run that long (never sooner than `floor_s` from now), admitted
ones after their estimate, and no further job arrives."""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec

from events.domain.simulation.planner import SimPlanner
from events.domain.simulation.trace import TraceJob

FLOOR_S: Final = 60.0


def forward_starts(
    planner: SimPlanner,
    running: Mapping[str, tuple[TraceJob, float]],
    targets: Iterable[str],
    now: float,
    *,
    floor_s: float = FLOOR_S,
) -> dict[str, float]:
    """The estimated start of each of `targets` (queued in `planner`, which the simulation
    consumes: pass a copy). A target never admitted by the estimates is left out."""
    wanted = set(targets)
    found: dict[str, float] = {}
    ends = [(now + max(planner.remaining(job_id, now), floor_s), job_id) for job_id in running]
    heapq.heapify(ends)
    started: dict[str, float] = {job_id: start for job_id, (_, start) in running.items()}
    while ends and wanted:
        at = ends[0][0]
        while ends and ends[0][0] == at:
            _, job_id = heapq.heappop(ends)
            planner.finish(job_id, at, at - started.pop(job_id))
        for job_id in planner.plan(at):
            started[job_id] = at
            heapq.heappush(ends, (at + max(planner.estimate(job_id), floor_s), job_id))
            if job_id in wanted:
                wanted.discard(job_id)
                found[job_id] = at
    return found


class NaiveClock(msgspec.Struct):
    """What the naive estimate knows at a moment: finished runtimes so far and the
    time-weighted number of running jobs since the first arrival."""

    default_runtime_s: float
    first: float | None = None
    last: float = 0.0
    running: int = 0
    running_seconds: float = 0.0
    finished_total: float = 0.0
    finished: int = 0

    def advance(self, now: float, running: int) -> None:
        if self.first is None:
            self.first = now
        else:
            self.running_seconds += self.running * (now - self.last)
        self.last, self.running = now, running

    def observe_finish(self, runtime: float) -> None:
        self.finished_total += runtime
        self.finished += 1

    def wait(self, position: int) -> float:
        """queue position x mean runtime ÷ mean number of running jobs."""
        mean_runtime = (
            self.finished_total / self.finished if self.finished else self.default_runtime_s
        )
        span = self.last - (self.first if self.first is not None else self.last)
        mean_running = self.running_seconds / span if span > 0 else float(self.running)
        return position * mean_runtime / max(mean_running, 1.0)


class EtaRecord(msgspec.Struct, frozen=True, gc=False):
    job_id: str
    submitted_at: float
    eta: float | None  # ftq's, None when the forward simulation never admits it
    naive_eta: float
    start: float


class EtaAccuracy(msgspec.Struct, frozen=True):
    jobs: int  # jobs still queued after their submit moment's pass
    waited_10min: int
    ftq_median_abs_error_h: float
    naive_median_abs_error_h: float
    ftq_median_rel_error: float  # |error| ÷ actual wait, jobs that waited ≥ 10 min
    naive_median_rel_error: float
    ftq_unestimated: int  # queued jobs the forward simulation never admitted


def accuracy(records: Sequence[EtaRecord]) -> EtaAccuracy:
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    known = [r for r in records if r.eta is not None]
    long = [r for r in known if r.start - r.submitted_at >= 600]
    return EtaAccuracy(
        jobs=len(records),
        waited_10min=len(long),
        ftq_median_abs_error_h=median(
            [abs(r.eta - r.start) / 3600 for r in known if r.eta is not None]
        ),
        naive_median_abs_error_h=median([abs(r.naive_eta - r.start) / 3600 for r in records]),
        ftq_median_rel_error=median(
            [abs(r.eta - r.start) / (r.start - r.submitted_at) for r in long if r.eta is not None]
        ),
        naive_median_rel_error=median(
            [abs(r.naive_eta - r.start) / (r.start - r.submitted_at) for r in long]
        ),
        ftq_unestimated=len(records) - len(known),
    )
