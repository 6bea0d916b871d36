"""Pipelines in the admission loop: read the open `after` edges for the planner's eligibility
filter (events.domain.scheduling.dependencies.gate), and fail the QUEUED jobs whose awaited
job ended FAIL or CANCELLED (the leader records it, at once: it runs every pass)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import msgspec
import structlog

from events.domain.job import JOB
from events.domain.job_commands import FailForDependency
from events.domain.rejections import CommandRejected
from events.domain.scheduling.dependencies import gate, unmet
from events.store.log import Connection
from projections.sql import DEPENDENCIES
from service.admission.admit import AdmissionContext
from service.commands import run_command

log = structlog.get_logger(__name__)


class HasJobId(Protocol):
    @property
    def job_id(self) -> str: ...


T = TypeVar("T", bound=HasJobId)
MAX_ROUNDS = 32  # a failure runs down a chain one link per round


class Waits(msgspec.Struct, frozen=True):
    """The open pipelines: job id -> the jobs it waits for (in its order), and their states."""

    after: dict[str, tuple[str, ...]]
    statuses: dict[str, str | None]

    def holds(self, job_id: str) -> bool:
        """Whether the job waits for a job that is not SUCCESS yet."""
        after = self.after.get(job_id)
        return after is not None and unmet(after, self.statuses) is not None

    def split(self, queue: Sequence[T]) -> tuple[list[T], list[tuple[T, str]]]:
        """`queue` as (free to plan, held back with the reason), order kept."""
        return gate(queue, _job_id, self.after, self.statuses)


def _job_id(job: HasJobId) -> str:
    return job.job_id


NO_WAITS = Waits({}, {})


async def load_waits(conn: Connection) -> Waits:
    rows = await conn.fetch(DEPENDENCIES["open_dependencies"])
    if not rows:
        return NO_WAITS
    after: dict[str, list[str]] = {}
    statuses: dict[str, str | None] = {}
    for job_id, dependency, state in rows:
        after.setdefault(job_id, []).append(dependency)
        statuses[dependency] = state
    return Waits({k: tuple(v) for k, v in after.items()}, statuses)


async def fail_broken_dependents(ctx: AdmissionContext) -> int:
    """FAIL every QUEUED job that waits for a job that ended FAIL or CANCELLED; how many."""
    failed = 0
    for _ in range(MAX_ROUNDS):
        async with ctx.pool.acquire() as conn:
            rows = await conn.fetch(DEPENDENCIES["broken_dependencies"])
        done: set[str] = set()
        before = failed
        for job_id, dependency, status in rows:
            if job_id in done:
                continue
            done.add(job_id)
            command = FailForDependency(
                at=ctx.clock(), dependency_id=dependency, dependency_status=status
            )
            try:
                await run_command(ctx.pool, JOB, job_id, command, ctx.metadata)
            except CommandRejected as exc:  # left the queue meanwhile (cancelled, say)
                log.info("dependencies.not_failed", job_id=job_id, reason=exc.message)
                continue
            failed += 1
            log.info("dependencies.failed", job_id=job_id, dependency=dependency, status=status)
        if failed == before:
            break
    return failed
