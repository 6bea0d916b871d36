"""A deterministic discrete-event simulation in simulated time.

At each moment where jobs arrive or end, every completion and arrival of that moment is
applied first, then one admission pass runs; a job runs exactly its `duration_s` once
admitted. Jobs that need more GPUs than their pool holds are left out as unschedulable."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence

import msgspec

from events.domain.simulation.planner import SimPlanner
from events.domain.simulation.trace import TraceJob

Running = Mapping[str, tuple[TraceJob, float]]  # id -> (job, start)
Observer = Callable[[float, SimPlanner, Running, Sequence[TraceJob]], None]


class JobRun(msgspec.Struct, frozen=True, gc=False):
    job: TraceJob
    start: float
    end: float

    @property
    def wait(self) -> float:
        return self.start - self.job.submitted_at


class Sample(msgspec.Struct, frozen=True, gc=False):
    """The state just after a moment's pass: queued jobs and GPUs in use."""

    at: float
    queued: int
    gpus_busy: int


class Outcome(msgspec.Struct, frozen=True):
    runs: list[JobRun]  # in (submitted_at, job_id) order
    unschedulable: list[TraceJob]
    never_started: list[TraceJob]  # queued when nothing was left to happen
    timeline: list[Sample]


def pool_of(job: TraceJob, quota: Mapping[str, int]) -> str:
    """The pool a job counts against: its GPU type, or the single pool `*`."""
    return "*" if "*" in quota else job.gpu_type


def fifo_key(job: TraceJob) -> tuple[float, str]:
    return (job.submitted_at, job.job_id)


def simulate(
    jobs: Sequence[TraceJob],
    planner: SimPlanner,
    quota: Mapping[str, int],
    *,
    on_moment: Callable[[int], None] | None = None,
    observe_arrival: Observer | None = None,
    timeline: bool = False,
) -> Outcome:
    """Run `jobs` through `planner`. `on_moment(arrived_so_far)` is called after each pass
    (for a progress bar); `observe_arrival(now, planner, running, arrived)` after each pass
    that followed arrivals (for ETAs)."""
    schedulable = sorted(
        (j for j in jobs if j.gpu_count <= quota.get(pool_of(j, quota), 0)), key=fifo_key
    )
    unschedulable = sorted(
        (j for j in jobs if j.gpu_count > quota.get(pool_of(j, quota), 0)), key=fifo_key
    )
    by_id = {j.job_id: j for j in schedulable}
    starts: dict[str, float] = {}
    running: dict[str, tuple[TraceJob, float]] = {}
    ends: list[tuple[float, str]] = []
    samples: list[Sample] = []
    queued = busy = 0
    i, n = 0, len(schedulable)
    while i < n or ends:
        now = min(schedulable[i].submitted_at if i < n else float("inf"),
                  ends[0][0] if ends else float("inf"))  # fmt: skip
        while ends and ends[0][0] == now:
            _, job_id = heapq.heappop(ends)
            job, start = running.pop(job_id)
            busy -= job.gpu_count
            planner.finish(job_id, now, now - start)
        arrived = i
        while i < n and schedulable[i].submitted_at == now:
            planner.arrive(schedulable[i], now)
            queued += 1
            i += 1
        for job_id in planner.plan(now):
            job = by_id[job_id]
            starts[job_id] = now
            running[job_id] = (job, now)
            heapq.heappush(ends, (now + job.duration_s, job_id))
            queued -= 1
            busy += job.gpu_count
        if timeline:
            samples.append(Sample(now, queued, busy))
        if observe_arrival is not None and i > arrived:
            observe_arrival(now, planner, running, schedulable[arrived:i])
        if on_moment is not None:
            on_moment(i)
    runs = [
        JobRun(j, starts[j.job_id], starts[j.job_id] + j.duration_s)
        for j in schedulable
        if j.job_id in starts
    ]
    never = [j for j in schedulable if j.job_id not in starts]
    return Outcome(runs, unschedulable, never, samples)
