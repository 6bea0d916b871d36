"""Pipelines (`after`, Slurm's afterok): a job waits QUEUED until every job it names is
SUCCESS, and can never run once one of them ended FAIL or CANCELLED.

A pure filter on eligibility, applied before any policy plans: the jobs it holds back are
not in the queue the planner sees, so they block nothing and take no slot; every planner
(the live one, the scheduling package's, the simulator) can use it the same way. The
statuses are what the log says now (`None`: not known)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, TypeVar

T = TypeVar("T")

SUCCESS: Final = "SUCCESS"
BROKEN: Final = frozenset({"FAIL", "CANCELLED"})
Statuses = Mapping[str, str | None]


def waiting_reason(dependency_id: str) -> str:
    """The `pending_reason` of a job held back by `dependency_id`."""
    return f"waiting for job {dependency_id} to succeed"


def dependency_failed_message(dependency_id: str, status: str) -> str:
    """The `error` of a job failed because `dependency_id` ended `status`."""
    return f"job {dependency_id} it waits for (after) ended {status}: this job cannot run"


def unmet(after: Iterable[str], statuses: Statuses) -> str | None:
    """The first job of `after` that is not SUCCESS yet (None: all are)."""
    for dependency in after:
        if statuses.get(dependency) != SUCCESS:
            return dependency
    return None


def broken(after: Iterable[str], statuses: Statuses) -> tuple[str, str] | None:
    """The first job of `after` that ended FAIL or CANCELLED, and how (None: none did)."""
    for dependency in after:
        status = statuses.get(dependency)
        if status in BROKEN:
            assert status is not None
            return dependency, status
    return None


def gate(
    queue: Sequence[T],
    job_id: Callable[[T], str],
    waits: Mapping[str, Sequence[str]],
    statuses: Statuses,
) -> tuple[list[T], list[tuple[T, str]]]:
    """Split `queue` (its order kept) into the jobs free to be planned and the ones held back,
    each with its reason. `waits` maps a job id to the jobs it names in `after` (jobs without
    `after` need no entry)."""
    if not waits:
        return list(queue), []
    free: list[T] = []
    held: list[tuple[T, str]] = []
    for job in queue:
        after = waits.get(job_id(job))
        missing = unmet(after, statuses) if after else None
        if missing is None:
            free.append(job)
        else:
            held.append((job, waiting_reason(missing)))
    return free, held
