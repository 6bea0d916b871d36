"""The leader's chores for the payload secrets, run from the admission loop's full reconcile:
shred the data keys of jobs ended more than FTQ_SECRET_RETENTION_DAYS ago (at most every
SWEEP_EVERY), and say once per job why a job's secrets cannot be opened."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import asyncpg
import structlog

from service.secrets.shred import shred_due
from service.settings import Settings

log = structlog.get_logger(__name__)

SWEEP_EVERY: Final = timedelta(minutes=5)


class Housekeeping:
    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, clock: Callable[[], datetime]
    ) -> None:
        self._pool = pool
        self._retention_days = settings.secret_retention_days
        self._clock = clock
        self._last: datetime | None = None
        self._told: set[str] = set()

    async def run_if_due(self) -> int:
        """Shred what the retention says is due, if the last sweep is old enough; never
        raises (a failed sweep is logged and tried at the next one)."""
        now = self._clock()
        if self._last is not None and now - self._last < SWEEP_EVERY:
            return 0
        self._last = now
        try:
            shredded = await shred_due(self._pool, self._retention_days, clock=self._clock)
        except Exception:
            log.exception("secrets.shred_sweep_failed")
            return 0
        if shredded:
            log.info("secrets.retention_shredded", jobs=shredded)
        return shredded

    def blocked(self, job_id: str, why: str) -> None:
        if job_id not in self._told:
            self._told.add(job_id)
            log.warning("admission.secrets_unavailable", job_id=job_id, why=why)
