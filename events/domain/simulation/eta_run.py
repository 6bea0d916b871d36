"""`--eta`: each job's ETA at its submit moment (ftq's forward simulation and the naive
estimate), compared with the start the simulation then gives it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from events.domain.simulation.engine import Outcome, Running, simulate
from events.domain.simulation.eta import FLOOR_S, EtaRecord, NaiveClock, forward_starts
from events.domain.simulation.planner import SimPlanner
from events.domain.simulation.trace import TraceJob


class _Watched:
    """A planner that tells the naive clock of every finish and pass."""

    def __init__(self, inner: SimPlanner, clock: NaiveClock) -> None:
        self.inner, self.clock, self.running = inner, clock, 0

    def arrive(self, job: TraceJob, now: float) -> None:
        self.inner.arrive(job, now)

    def plan(self, now: float) -> Sequence[str]:
        admitted = self.inner.plan(now)
        self.running += len(admitted)
        self.clock.advance(now, self.running)
        return admitted

    def finish(self, job_id: str, now: float, runtime: float) -> None:
        self.running -= 1
        self.clock.observe_finish(runtime)
        self.inner.finish(job_id, now, runtime)

    def estimate(self, job_id: str) -> float:
        return self.inner.estimate(job_id)

    def remaining(self, job_id: str, now: float) -> float:
        return self.inner.remaining(job_id, now)

    def position(self, job_id: str) -> int:
        return self.inner.position(job_id)

    def copy(self) -> SimPlanner:
        return self.inner.copy()


def measure_etas(
    jobs: Sequence[TraceJob],
    planner: SimPlanner,
    quota: Mapping[str, int],
    *,
    default_runtime_s: float,
    floor_s: float = FLOOR_S,
    on_moment: Callable[[int], None] | None = None,
) -> tuple[Outcome, list[EtaRecord]]:
    """Simulate `jobs`; for each job still queued after its submit moment's pass, its ETA
    from a forward simulation of that moment's state, and the naive one."""
    clock = NaiveClock(default_runtime_s=default_runtime_s)
    watched = _Watched(planner, clock)
    etas: dict[str, tuple[float, float | None, float]] = {}

    def observe(now: float, _: SimPlanner, running: Running, arrived: Sequence[TraceJob]) -> None:
        queued = [j.job_id for j in arrived if j.job_id not in running]
        if not queued:
            return
        found = forward_starts(planner.copy(), running, queued, now, floor_s=floor_s)
        for job_id in queued:
            naive = now + clock.wait(planner.position(job_id))
            etas[job_id] = (now, found.get(job_id), naive)

    outcome = simulate(jobs, watched, quota, observe_arrival=observe, on_moment=on_moment)
    records = [
        EtaRecord(
            r.job.job_id, r.job.submitted_at, etas[r.job.job_id][1], etas[r.job.job_id][2], r.start
        )
        for r in outcome.runs
        if r.job.job_id in etas
    ]
    return outcome, records
