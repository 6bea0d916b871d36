"""What the simulator needs of a planner: the live planner's stateful arrive/plan/finish.

The simulator never implements a policy: it drives an object of this shape, built by the
shell around the same planning code the admission loop runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from events.domain.simulation.trace import TraceJob


class SimPlanner(Protocol):
    def arrive(self, job: TraceJob, now: float) -> None:
        """`job` joins the queue at `now` (its duration is not for the planner to see)."""

    def plan(self, now: float) -> Sequence[str]:
        """One admission pass at `now`: the ids admitted, which now count as running."""

    def finish(self, job_id: str, now: float, runtime: float) -> None:
        """A running job ended at `now` after `runtime` seconds (an observed runtime)."""

    def estimate(self, job_id: str) -> float:
        """The estimated runtime (seconds) of a queued or running job, from what has been
        observed so far."""

    def remaining(self, job_id: str, now: float) -> float:
        """The expected further runtime (seconds) of a running job at `now`, given how long
        it has run and the runtimes observed so far."""

    def position(self, job_id: str) -> int:
        """The 1-based rank of a queued job in the policy's order."""

    def copy(self) -> SimPlanner:
        """An independent planner in the same state (for forward simulations)."""
