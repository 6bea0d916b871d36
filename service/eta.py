"""Live ETAs: when each QUEUED job is expected to be admitted, rebuilt in the background.

A forward simulation (`events.domain.simulation.live_etas`) of the current state under the
live policy and caps: ftq's PROGRESS jobs end after the runtime estimator's remaining time
for a job that has run that long (never sooner than a floor from now), the queue is
admitted by the same planner the simulator drives, on ftq's share of the quota (the quota
less what runs outside ftq). The estimator learns the runtimes of finished jobs as they
finish (read incrementally). Rebuilt after events (debounced) and at least every
`INTERVAL_S`, but never building more than a tenth of the time (`QUIET_FACTOR`); requests
only read the last result (`EtaForecaster.eta`), never wait for one.
A paused scheduler gives no ETAs, nor does a job waiting for others (`after`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import asyncpg
import msgspec
import structlog

from events.domain.scheduling import Job, RuntimeEstimator, UsageLedger
from events.domain.simulation.live import (
    LiveJob,
    live_etas,
    live_etas_packed,
    pack_jobs,
    queued_live,
    unpack_etas,
)
from events.store.log import Connection
from events.store.tail import LogWatcher, Subscription
from service.admission.dependencies import load_waits
from service.admission.queue import PlannerInputs, RunningRow, load_planner_inputs, load_queue
from service.api.schemas import JobView, QueueEntry
from service.capacity import CapacityReader
from service.child_process import exit_with_parent
from service.clock import Clock, utcnow
from service.settings import Settings

log = structlog.get_logger(__name__)

INTERVAL_S: Final = 10.0  # rebuilt at least this often
# After an event, wait this long for the rest of a burst: under a steady stream of submits
# the forecast is rebuilt every ~2 s, not after each one (it cost 17 % of a loaded server's
# CPU at 0.5 s; bench http_api).
DEBOUNCE_S: Final = 2.0
# And after a forecast, at least this many times as long as it took to build: over a long
# queue it holds the GIL for a while, and a server under load must not spend more than about
# a tenth of its CPU on forecasts.
QUIET_FACTOR: Final = 10.0
FINISHED_PAGE: Final = 5000
# A forecast of a queue at least this long runs in a process of its own: in a thread it holds
# the GIL for tenths of a second, and requests answered meanwhile wait for it (paced POST
# /jobs at 1.6k req/s, the queue growing to 8k: p99 34-36 ms with it in a thread, 21-23 ms
# without it; bench/http_api.py). Shorter queues take milliseconds: a thread, no process.
PROCESS_AT: Final = 2000

_FINISHED = """
SELECT user_id::text, kind, gpu_count, started_at, completed_at, id::text, state
FROM jobs
WHERE state IN ('SUCCESS', 'FAIL') AND started_at IS NOT NULL AND completed_at IS NOT NULL
  AND (completed_at, id) > ($1, $2::uuid)
ORDER BY completed_at, id
LIMIT $3
"""  # SUCCESS and FAIL: the index's rows; only successes feed the estimator, as in the loop
_REBUILD_ERRORS: Final = (
    OSError, asyncpg.PostgresError, asyncpg.InterfaceError, BrokenProcessPool
)  # fmt: skip
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
        clock: Clock = utcnow,
        ledger: Callable[[], UsageLedger | None] = lambda: None,
        interval_s: float = INTERVAL_S,
        debounce_s: float = DEBOUNCE_S,
        process_at: int = PROCESS_AT,
    ) -> None:
        self._pool, self._settings, self._capacity = pool, settings, capacity
        self._watcher, self._clock, self._ledger = watcher, clock, ledger
        self._interval_s, self._debounce_s = interval_s, debounce_s
        self._process_at = process_at
        self._process: ProcessPoolExecutor | None = None  # made for the first long queue
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
        if self._process is not None:
            self._process.shutdown(wait=False, cancel_futures=True)
            self._process = None

    async def _run(self) -> None:
        while True:
            woken = self._subscription.event if self._subscription is not None else None
            if woken is not None:
                woken.clear()
            try:
                await self.rebuild()
            except _REBUILD_ERRORS as exc:
                log.warning("eta.rebuild_failed", error=f"{type(exc).__name__}: {exc}")
            if woken is None:
                await asyncio.sleep(self._interval_s)
                continue
            built = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await woken.wait()
            quiet = QUIET_FACTOR * (self.forecast.build_s if self.forecast is not None else 0.0)
            await asyncio.sleep(max(self._debounce_s, quiet - (time.monotonic() - built)))

    async def rebuild(self) -> Forecast:
        """One forecast from the projections now; kept as `forecast` and returned."""
        t0 = time.perf_counter()
        async with self._pool.acquire() as conn:
            await self._learn(conn)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                queue = await load_queue(conn)
                inputs = await load_planner_inputs(conn)
                waits = await load_waits(conn)
        if waits.after:  # jobs waiting for others (`after`) get no ETA
            queue, _ = waits.split(queue)
        now = self._clock()
        etas: dict[str, datetime] = {}
        gpus = self._gpus(inputs)
        if gpus and not inputs.paused and queue:
            settings = self._settings
            policy = settings.scheduling_policy(inputs.weights)
            ledger = self._ledger() if policy.name == "fair-share" else None
            running = [_running(r) for r in inputs.running]
            found = await self._run_forecast(
                queue, running, gpus=gpus, limits=settings.limits(inputs.user_caps),
                policy=policy, estimator=self._estimator, now=now.timestamp(), ledger=ledger,
            )  # fmt: skip
            etas = {job_id: _EPOCH + timedelta(seconds=at) for job_id, at in found.items()}
        forecast = Forecast(etas, now, len(queue), time.perf_counter() - t0)
        self.forecast = forecast
        return forecast

    async def _run_forecast(
        self, queue: list[Job], running: list[LiveJob], **given: Any
    ) -> dict[str, float]:
        """`live_etas` of the queue off the event loop (`given`: its other arguments): in a
        thread for a short queue, else in a process of its own, sent the jobs packed in one
        buffer (`pack_jobs`) and the estimator pickled."""
        if len(queue) < self._process_at:
            return await asyncio.to_thread(
                lambda: live_etas([queued_live(j) for j in queue], running, **given)
            )
        if self._process is None:
            self._process = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=exit_with_parent,  # never outlives a server that was killed
                initargs=(os.getpid(),),
            )
        # in the process, only the domain is imported
        job = functools.partial(live_etas_packed, pack_jobs(queue, running), **given)
        try:
            packed = await asyncio.get_running_loop().run_in_executor(self._process, job)
        except BrokenProcessPool:  # the process died (killed, out of memory): a new one next
            self._process = None
            raise
        return unpack_etas(packed)

    def _gpus(self, inputs: PlannerInputs) -> dict[str, int]:
        """ftq's GPUs per type: each type's quota less what runs outside ftq (the capacity
        cache's last reading: never waits on Fireworks)."""
        capacity = self._capacity.peek(inputs.gpus_by_type())
        return {
            t: max(0, pool.quota - max(0, pool.in_use - pool.ftq_in_use))
            for t, pool in capacity.pools.items()
        }

    async def _learn(self, conn: Connection) -> None:
        """Feed the estimator the runtimes of jobs finished since the last rebuild."""
        while True:
            rows = await conn.fetch(_FINISHED, self._seen[0], self._seen[1], FINISHED_PAGE)
            for user_id, kind, gpus, started, completed, _, state in rows:
                if state == "SUCCESS":
                    seconds = (completed - started).total_seconds()
                    self._estimator.observe(user_id, kind, gpus, seconds)
            if rows:
                self._seen = (rows[-1][4], rows[-1][5])
            if len(rows) < FINISHED_PAGE:
                return


def _running(row: RunningRow) -> LiveJob:
    started = None if row.started_at is None else row.started_at.timestamp()
    return LiveJob(row.job_id, row.user_id, row.gpu_count, started or 0.0, started,
                   kind=row.kind, max_runtime_minutes=row.max_runtime_minutes,
                   gpu_type=row.gpu_type)  # fmt: skip


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
