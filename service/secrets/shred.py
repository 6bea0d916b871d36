"""Crypto-shredding: delete an ended job's data key, in the same transaction as the
`job.secrets_shredded` event that says who did it and when. The secrets sealed in the log are
then unreadable forever; every other field, the history, replay and audit are untouched."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

import asyncpg
import structlog

from events.domain.job import JOB, JobState, decide
from events.domain.job_commands import ShredSecrets
from events.store.errors import StreamVersionConflict
from projections.recorder import load, record
from service.clock import Clock, utcnow
from service.secrets.vault import QUERIES

log = structlog.get_logger(__name__)

ATTEMPTS: Final = 8
RETENTION_ACTOR: Final = "retention"
ORPHAN_AGE: Final = timedelta(hours=1)  # a submit never takes this long between key and event
BATCH: Final = 100
MAX_PER_SWEEP: Final = 1000  # the sweep runs inside the leader's pass: the rest waits for the next


async def shred(
    pool: asyncpg.Pool,
    job_id: str,
    by: str,
    metadata: Mapping[str, Any],
    *,
    reason: str = "requested",
    clock: Clock = utcnow,
) -> JobState:
    """Shred `job_id`'s secrets on behalf of `by`. Raises `InvalidState` (job not ended) or
    `UnknownStream`; shredding twice records nothing the second time."""
    for attempt in range(1, ATTEMPTS + 1):
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    state = await load(conn, JOB, job_id)
                    events = decide(ShredSecrets(at=clock(), by=by, reason=reason), state)
                    # No waker: the NOTIFY goes out with this transaction's commit.
                    after, _ = await record(conn, JOB, state, events, metadata)
                    await conn.execute(QUERIES["delete_key"], job_id)
            except StreamVersionConflict:
                if attempt == ATTEMPTS:
                    raise
                continue
        if events:
            log.info("secrets.shredded", job_id=job_id, by=by, reason=reason)
        return after
    raise AssertionError("unreachable")


async def shred_due(pool: asyncpg.Pool, retention_days: float, *, clock: Clock = utcnow) -> int:
    """One sweep of the retention: shred every job ended more than `retention_days` ago that
    still has a data key, and drop the keys of submits that never committed. Returns how many
    jobs were shredded."""
    now = clock()
    done = 0
    while True:
        rows = await pool.fetch(
            QUERIES["due_for_shredding"], now - timedelta(days=retention_days), BATCH
        )
        for row in rows:
            await shred(
                pool, row[0], RETENTION_ACTOR, {"actor": RETENTION_ACTOR},
                reason=f"ended more than {retention_days:g} days ago", clock=clock,
            )  # fmt: skip
            done += 1
        if len(rows) < BATCH or done >= MAX_PER_SWEEP:
            break
    await pool.execute(QUERIES["orphan_keys"], ORPHAN_AGE)
    return done
