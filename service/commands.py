"""Run a command against any aggregate (a job, a user, the scheduler): load, decide, record;
on a version conflict (another writer got there first) load fresh state and decide again.

Service writers pass the process's `Waker`; without one each write NOTIFYs on its own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import asyncpg

from events.domain.decider import Decider
from events.store.errors import StreamVersionConflict
from events.store.log import RecordedEvent
from events.store.waker import Waker
from projections.recorder import Versioned, load, record
from service.metrics import count_recorded

ATTEMPTS = 8
C = TypeVar("C")
S = TypeVar("S", bound=Versioned)
E = TypeVar("E")


async def run_command(
    pool: asyncpg.Pool,
    decider: Decider[C, S, E],
    key: str,
    command: C | Callable[[S], C],
    metadata: Mapping[str, Any],
    *,
    waker: Waker | None = None,
    new_stream: bool = False,
) -> tuple[S, list[RecordedEvent]]:
    """Decide `command` on the current state of the aggregate `key` and record the outcome
    (at most ATTEMPTS times on version conflicts).

    `command` may be a function of the state, for commands whose content depends on it.
    Raises `CommandRejected` when the rules refuse it (nothing recorded). `new_stream`: the
    caller has just made `key`, so the first attempt takes the stream to be empty without
    reading it; if it was not, the append conflicts and the next attempt reads it."""
    for attempt in range(1, ATTEMPTS + 1):
        async with pool.acquire() as conn:
            if new_stream and attempt == 1:
                state = decider.initial
            else:
                state = await load(conn, decider, key)
            cmd: C = command(state) if callable(command) else command
            try:
                after, recorded = await record(
                    conn, decider, state, decider.decide(cmd, state), metadata, waker
                )
            except StreamVersionConflict:
                if attempt == ATTEMPTS:
                    raise
                continue
        count_recorded(event.type for event in recorded)
        return after, recorded
    raise AssertionError("unreachable")
