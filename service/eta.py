"""Live ETAs: when each QUEUED job is expected to be admitted, rebuilt in the background.

A forward simulation (`events.domain.simulation.live_etas`) of the current state under the
live policy and caps: ftq's PROGRESS jobs end after the runtime estimator's remaining time
for a job that has run that long (never sooner than a floor from now), the queue is
admitted by the same planner the simulator drives, on ftq's share of the quota (the quota
less what runs outside ftq). The estimator learns the runtimes of finished jobs as they
finish (read incrementally). Rebuilt after events (debounced) and at least every
`INTERVAL_S`; requests only read the last result (`EtaForecaster.eta`), never wait for one.
A paused scheduler, or a capacity that cannot be read, gives no ETAs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final, TypeVar

import asyncpg
import msgspec
import structlog

from events.domain.scheduling import Limits, Policy, RuntimeEstimator
from events.domain.simulation.history import user_caps
from events.domain.simulation.live import LiveJob, live_etas
from events.store.log import Connection
from events.store.tail import LogWatcher, Subscription
from service.admission.queue import load_planner_inputs
from service.api.schemas import JobView, QueueEntry
from service.capacity import CapacityReader, utcnow
from service.settings import Settings

log = structlog.get_logger(__name__)

INTERVAL_S: Final = 10.0  # rebuilt at least this often
DEBOUNCE_S: Final = 0.5  # after an event, wait this long for the rest of a burst
CAPACITY_TIMEOUT_S: Final = 2.0
FINISHED_PAGE: Final = 5000

_ACTIVE = """
SELECT j.id::text, j.user_id::text, j.gpu_count, j.created_at, j.started_at, j.kind,
       o.max_runtime_minutes, j.state
FROM jobs j LEFT JOIN job_operations o ON o.job_id = j.id
WHERE j.state IN ('QUEUED', 'PROGRESS')
ORDER BY j.created_at, j.id
"""
_FINISHED = """
SELECT user_id::text, kind, gpu_count, started_at, completed_at, id::text
FROM jobs
WHERE state IN ('SUCCESS', 'FAIL') AND started_at IS NOT NULL AND completed_at IS NOT NULL
  AND (completed_at, id) > ($1, $2::uuid)
ORDER BY completed_at, id
LIMIT $3
"""
_EPOCH: Final = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_NIL: Final = "00000000-0000-0000-0000-000000000000"


class Forecast(msgspec.Struct, frozen=True):
    etas: dict[str, datetime]  # QUEUED job id -> estimated admission
    built_at: datetime
    queued: int
    build_s: float


class EtaForecaster:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        capacity: CapacityReader,
        watcher: LogWatcher | None,
        *,
        clock: Callable[[], datetime] = utcnow,
        interval_s: float = INTERVAL_S,
        debounce_s: float = DEBOUNCE_S,
    ) -> None:
        self._pool, self._settings, self._capacity = pool, settings, capacity
        self._watcher, self._clock = watcher, clock
        self._interval_s, self._debounce_s = interval_s, debounce_s
        self._estimator = RuntimeEstimator()
        self._seen: tuple[datetime, str] = (_EPOCH, _NIL)  # finished jobs read up to here
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self.forecast: Forecast | None = None

    def eta(self, job_id: str) -> datetime | None:
        """The last forecast's ETA of a QUEUED job (None: none yet, or not admissible)."""
        forecast = self.forecast
        return None if forecast is None else forecast.etas.get(job_id)

    async def start(self) -> None:
        if self._task is None:
            if self._watcher is not None:
                self._subscription = self._watcher.subscribe()
            self._task = asyncio.create_task(self._run(), name="ftq-eta-forecaster")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    async def _run(self) -> None:
        while True:
            woken = self._subscription.event if self._subscription is not None else None
            if woken is not None:
                woken.clear()
            try:
                await self.rebuild()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("eta.rebuild_failed", error=f"{type(exc).__name__}: {exc}")
            if woken is None:
                await asyncio.sleep(self._interval_s)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await woken.wait()
            await asyncio.sleep(self._debounce_s)

    async def rebuild(self) -> Forecast:
        """One forecast from the projections now; kept as `forecast` and returned."""
        t0 = time.perf_counter()
        async with self._pool.acquire() as conn:
            await self._learn(conn)
            try:
                async with asyncio.timeout(CAPACITY_TIMEOUT_S):
                    capacity = await self._capacity.read(conn)
            except TimeoutError:
                capacity = None
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rows = await conn.fetch(_ACTIVE)
                inputs = await load_planner_inputs(conn, self._settings.user_cap)
        now = self._clock()
        queued = [_live(r) for r in rows if r[7] == "QUEUED"]
        running = [_live(r) for r in rows if r[7] == "PROGRESS"]
        etas: dict[str, datetime] = {}
        if capacity is not None and not inputs.paused and queued:
            outside = max(0, capacity.in_use - capacity.ftq_in_use)
            gpus = max(0, capacity.quota - outside)
            cap = self._settings.user_cap
            limits = Limits(cap_small=cap, cap_big=cap, user_caps=user_caps(inputs.load.caps))
            policy = Policy(self._settings.policy)
            found = await asyncio.to_thread(
                live_etas, queued, running, gpus, limits, policy, self._estimator,
                now.timestamp(),
            )  # fmt: skip
            etas = {job_id: _EPOCH + timedelta(seconds=at) for job_id, at in found.items()}
        forecast = Forecast(etas, now, len(queued), time.perf_counter() - t0)
        self.forecast = forecast
        return forecast

    async def _learn(self, conn: Connection) -> None:
        """Feed the estimator the runtimes of jobs finished since the last rebuild."""
        while True:
            rows = await conn.fetch(_FINISHED, self._seen[0], self._seen[1], FINISHED_PAGE)
            for user_id, kind, gpus, started, completed, _ in rows:
                seconds = (completed - started).total_seconds()
                self._estimator.observe(user_id, kind, gpus, seconds)
            if rows:
                self._seen = (rows[-1][4], rows[-1][5])
            if len(rows) < FINISHED_PAGE:
                return


def _live(row: asyncpg.Record) -> LiveJob:
    started = row[4]
    return LiveJob(
        job_id=row[0],
        user_id=row[1],
        gpu_count=row[2],
        created_at=row[3].timestamp(),
        started_at=None if started is None else started.timestamp(),
        kind=row[5],
        max_runtime_minutes=row[6],
    )


View = TypeVar("View", JobView, QueueEntry)


def with_etas(forecaster: EtaForecaster | None, views: list[View]) -> list[View]:
    """`views` with the last forecast's `eta` on each QUEUED one (a dict read per view)."""
    if forecaster is None or forecaster.forecast is None:
        return views
    etas = forecaster.forecast.etas
    out: list[View] = []
    for view in views:
        at = etas.get(view.id)
        queued = isinstance(view, QueueEntry) or view.state == "QUEUED"
        out.append(msgspec.structs.replace(view, eta=at) if at is not None and queued else view)
    return out
