"""What the planner learns from the log, kept current incrementally: runtime estimates
(events.domain.scheduling.RuntimeEstimator) and fair-share usage (UsageLedger).

`catch_up` reads only the events appended since the last call (`events.store.log.read_all`,
gap-free in commit order), so a pass never scans history; the first call reads the log once.
A job runs from its `job.admission_started` (when it starts holding GPUs, the `started_at`
of its row) to its terminal event; a quota refusal (`job.returned_to_queue`) undoes the start.
Only successes feed the estimator; every finished run counts as usage."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from events.domain import codec
from events.domain.job_events import AdmissionStarted, JobSubmitted
from events.domain.scheduling import Job, Running, RuntimeEstimator, UsageLedger
from events.store.log import Connection, Cursor, read_all

PAGE: Final = 5000
REBASE_HALF_LIVES: Final = 64  # the ledger's reference time moves this far behind at most
FLOOR_S: Final = 60.0  # a running job is never expected to end sooner than this from now
_FOLDED: Final = frozenset(
    {
        "job.submitted",
        "job.admission_started",
        "job.returned_to_queue",
        "job.succeeded",
        "job.failed",
        "job.cancelled",
    }
)


class SchedulingHistory:
    def __init__(self, default_runtime_minutes: float, half_life_hours: float) -> None:
        self.estimator = RuntimeEstimator(default_runtime_minutes)
        self.half_life_hours = half_life_hours
        self.ledger: UsageLedger | None = None  # created at the first event's time
        self.cursor = Cursor.START
        self._jobs: dict[str, tuple[str, str, int]] = {}  # live job -> (user, kind, gpus)
        self._started: dict[str, datetime] = {}

    async def catch_up(self, conn: Connection) -> int:
        """Fold the events appended since the last call; returns how many were read."""
        read = 0
        while True:
            rows = await read_all(conn, self.cursor, PAGE)
            for row in rows:
                if row.type in _FOLDED:
                    self._fold(row.stream_id, row.type, row.schema_version, row.data)
            read += len(rows)
            if rows:
                self.cursor = rows[-1].cursor
            if len(rows) < PAGE:
                return read

    def _fold(self, job_id: str, type_: str, version: int, data: bytes) -> None:
        event = codec.decode(type_, version, data)
        at = event.at
        ledger = self._ledger(at)
        if isinstance(event, JobSubmitted):
            self._jobs[job_id] = (event.user_id, event.kind, event.gpu_count)
            return
        if isinstance(event, AdmissionStarted):
            self._started[job_id] = at
            return
        if type_ == "job.returned_to_queue":
            self._started.pop(job_id, None)
            return
        known = self._jobs.pop(job_id, None)
        started = self._started.pop(job_id, None)
        if known is None or started is None:
            return
        user_id, kind, gpus = known
        ledger.finish(user_id, gpus, started, at)
        if type_ == "job.succeeded":
            self.estimator.observe(user_id, kind, gpus, (at - started).total_seconds())

    def _ledger(self, at: datetime) -> UsageLedger:
        ledger = self.ledger
        if ledger is None:
            ledger = self.ledger = UsageLedger(self.half_life_hours, at)
        elif (at - ledger.epoch).total_seconds() > REBASE_HALF_LIVES * ledger.half_life_s:
            ledger.rebase(at)
        return ledger

    def usage(self, now: datetime, running: Iterable[Running]) -> dict[str, float]:
        """Every user's decayed GPU-seconds at `now`, running jobs included."""
        return self._ledger(now).at(now, running)

    def expected_end(self, job: Job, started_at: datetime, now: datetime) -> datetime:
        """When a job that started at `started_at` is expected to end, as known at `now`:
        its start plus its estimate, or, once past that, now plus the estimator's remaining
        time for a job that has run that long (at least FLOOR_S)."""
        end = started_at + timedelta(seconds=self.estimator.estimate(job))
        if end > now:
            return end
        elapsed = (now - started_at).total_seconds()
        return now + timedelta(seconds=self.estimator.remaining(job, elapsed, FLOOR_S))
