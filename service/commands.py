"""Run a command against a job, user or the scheduler: load, decide, record; on a version
conflict (another writer got there first) load fresh state and decide again.

Service writers pass the process's `Waker`; without one each write NOTIFYs on its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg

from events.domain.directory import (
    SchedulerCommand,
    SchedulerState,
    UserCommand,
    UserState,
    decide_scheduler,
    decide_user,
)
from events.domain.job import JobState, decide, initial_state
from events.domain.job_commands import JobCommand
from events.store.errors import StreamVersionConflict
from events.store.log import Connection, RecordedEvent
from events.store.waker import Waker
from projections.recorder import (
    load_job,
    load_scheduler,
    load_user,
    record_job,
    record_scheduler,
    record_user,
)
from service.metrics import count_recorded

ATTEMPTS = 8
T = TypeVar("T")
JobCommandFor = Callable[[JobState], JobCommand]


async def _retrying(pool: asyncpg.Pool, once: Callable[[Connection, int], Awaitable[T]]) -> T:
    """Run `once(conn, attempt)` until it records without a version conflict (at most
    ATTEMPTS times)."""
    for attempt in range(1, ATTEMPTS + 1):
        async with pool.acquire() as conn:
            try:
                return await once(conn, attempt)
            except StreamVersionConflict:
                if attempt == ATTEMPTS:
                    raise
    raise AssertionError("unreachable")


async def run_job_command(
    pool: asyncpg.Pool,
    job_id: str,
    command: JobCommand | JobCommandFor,
    metadata: Mapping[str, Any],
    *,
    waker: Waker | None = None,
    new_stream: bool = False,
) -> tuple[JobState, list[RecordedEvent]]:
    """Decide `command` on the job's current state and record the outcome.

    `command` may be a function of the state, for commands whose content depends on it.
    Raises `CommandRejected` when the rules refuse it (nothing recorded). `new_stream`: the
    caller has just made `job_id`, so the first attempt takes the stream to be empty without
    reading it; if it was not, the append conflicts and the next attempt reads it."""

    async def once(conn: Connection, attempt: int) -> tuple[JobState, list[RecordedEvent]]:
        if new_stream and attempt == 1:
            state = initial_state()
        else:
            state = await load_job(conn, job_id)
        cmd = command(state) if callable(command) else command
        return await record_job(conn, state, decide(cmd, state), metadata, waker)

    after, recorded = await _retrying(pool, once)
    count_recorded(event.type for event in recorded)
    return after, recorded


async def run_user_command(
    pool: asyncpg.Pool,
    email: str,
    command: UserCommand,
    metadata: Mapping[str, Any],
    *,
    waker: Waker | None = None,
) -> tuple[UserState, list[RecordedEvent]]:
    async def once(conn: Connection, _: int) -> tuple[UserState, list[RecordedEvent]]:
        state = await load_user(conn, email)
        return await record_user(conn, state, decide_user(command, state), metadata, waker)

    return await _retrying(pool, once)


async def run_scheduler_command(
    pool: asyncpg.Pool,
    command: SchedulerCommand,
    metadata: Mapping[str, Any],
    *,
    waker: Waker | None = None,
) -> tuple[SchedulerState, list[RecordedEvent]]:
    async def once(conn: Connection, _: int) -> tuple[SchedulerState, list[RecordedEvent]]:
        state = await load_scheduler(conn)
        decided = decide_scheduler(command, state)
        return await record_scheduler(conn, state, decided, metadata, waker)

    return await _retrying(pool, once)
