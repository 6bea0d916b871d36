"""Run a command against a job, user or the scheduler: load, decide, record; on a version
conflict (another writer got there first) load fresh state and decide again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg

from events.directory import (
    SchedulerCommand,
    SchedulerState,
    UserCommand,
    UserState,
    decide_scheduler,
    decide_user,
)
from events.errors import StreamVersionConflict
from events.job import JobState, decide
from events.job_commands import JobCommand
from events.store import Connection, RecordedEvent
from projections.recorder import (
    load_job,
    load_scheduler,
    load_user,
    record_job,
    record_scheduler,
    record_user,
)

ATTEMPTS = 8
T = TypeVar("T")
JobCommandFor = Callable[[JobState], JobCommand]


async def _retrying(pool: asyncpg.Pool, once: Callable[[Connection], Awaitable[T]]) -> T:
    """Run `once` until it records without a version conflict (at most ATTEMPTS times)."""
    for attempt in range(1, ATTEMPTS + 1):
        async with pool.acquire() as conn:
            try:
                return await once(conn)
            except StreamVersionConflict:
                if attempt == ATTEMPTS:
                    raise
    raise AssertionError("unreachable")


async def run_job_command(
    pool: asyncpg.Pool,
    job_id: str,
    command: JobCommand | JobCommandFor,
    metadata: Mapping[str, Any],
) -> tuple[JobState, list[RecordedEvent]]:
    """Decide `command` on the job's current state and record the outcome.

    `command` may be a function of the state, for commands whose content depends on it.
    Raises `CommandRejected` when the rules refuse it (nothing recorded)."""

    async def once(conn: Connection) -> tuple[JobState, list[RecordedEvent]]:
        state = await load_job(conn, job_id)
        cmd = command(state) if callable(command) else command
        return await record_job(conn, state, decide(cmd, state), metadata)

    return await _retrying(pool, once)


async def run_user_command(
    pool: asyncpg.Pool, email: str, command: UserCommand, metadata: Mapping[str, Any]
) -> tuple[UserState, list[RecordedEvent]]:
    async def once(conn: Connection) -> tuple[UserState, list[RecordedEvent]]:
        state = await load_user(conn, email)
        return await record_user(conn, state, decide_user(command, state), metadata)

    return await _retrying(pool, once)


async def run_scheduler_command(
    pool: asyncpg.Pool, command: SchedulerCommand, metadata: Mapping[str, Any]
) -> tuple[SchedulerState, list[RecordedEvent]]:
    async def once(conn: Connection) -> tuple[SchedulerState, list[RecordedEvent]]:
        state = await load_scheduler(conn)
        return await record_scheduler(conn, state, decide_scheduler(command, state), metadata)

    return await _retrying(pool, once)
