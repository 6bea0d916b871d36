"""The admission loop: one leader reconciles with Fireworks, reads the headroom, plans, admits.

Wakes on NOTIFY (through the LogWatcher) and on the reconcile timer; a burst of appends gives
one pass. NOTIFY-driven passes only resolve open admissions and requested cancels before
admitting; every job is GET on Fireworks on the timer (`FTQ_RECONCILE_SECONDS`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from events.domain.directory import SCHEDULER, RecordPolicy
from events.domain.directory_events import SCHEDULER_STREAM
from events.domain.job_events import AdmissionReason
from events.domain.scheduling import Admission
from events.store.tail import LogWatcher, Subscription
from projections.recorder import hold_admission_gate
from service import metrics
from service.admission.admit import (
    AdmissionContext,
    Checkpoint,
    create,
    no_checkpoint,
    start,
)
from service.admission.dependencies import fail_broken_dependents
from service.admission.history import SchedulingHistory
from service.admission.leader import Leadership
from service.admission.limits import check_running_jobs
from service.admission.queue import first_admission, load_planner_inputs, pass_inputs
from service.admission.reconcile import reconcile
from service.capacity import Capacity, CapacityReader, Pool
from service.clock import utcnow
from service.commands import run_command
from service.fireworks import FireworksClient
from service.secrets.admission import SecretsBlocked
from service.secrets.housekeeping import Housekeeping
from service.secrets.vault import Vault
from service.settings import Settings, policy_record

log = structlog.get_logger(__name__)

FOLLOWER_RETRY_S: Final = 1.0
DEBOUNCE_S: Final = 0.002
TICK_LIMIT_S: Final = 120.0  # at least; or four reconcile intervals when that is longer


class TickSummary(msgspec.Struct, frozen=True, kw_only=True):
    started_at: datetime
    duration_ms: float
    reconciled: int = 0
    admitted: int = 0
    returned: int = 0
    failed: int = 0
    cancelled: int = 0
    dependency_failed: int = 0  # QUEUED jobs failed because a job they wait for did
    quota: int = 0
    in_use: int = 0
    available: int = 0
    error: str | None = None


class SchedulerStatus(msgspec.Struct):
    leader: bool
    paused: bool
    last_tick: TickSummary | None
    policy: str = "strict-fifo"
    # The headroom per GPU type the loop last read (GPU type -> free GPUs), and when.
    headroom: dict[str, int] | None = None


class AdmissionLoop:
    """Runs passes while leader; `tick()` is one pass and can be called directly (tests)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: FireworksClient,
        settings: Settings,
        watcher: LogWatcher | None,
        *,
        capacity: CapacityReader,
        clock: Callable[[], datetime] = utcnow,
        checkpoint: Checkpoint | None = None,  # the composition root passes the fault hook
        dsn: str | None = None,
        follower_retry_s: float = FOLLOWER_RETRY_S,
        tick_limit_s: float | None = None,
        vault: Vault | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._watcher = watcher
        self._capacity = capacity
        self._ctx = AdmissionContext(pool, client, clock, checkpoint or no_checkpoint, vault=vault)
        # Jobs whose secrets cannot be opened (service.secrets): kept out of the plans, looked
        # at again after each full reconcile; and the leader's secrets chores (shredding).
        self._blocked: set[str] = set()
        self._housekeeping = Housekeeping(pool, settings, clock)
        self._dsn = dsn or settings.database_url
        self._follower_retry_s = follower_retry_s
        # A pass that hangs (an await that never returns) must not hold leadership forever.
        self._tick_limit_s = tick_limit_s or max(TICK_LIMIT_S, 4 * settings.reconcile_seconds)
        self._leadership = Leadership(self._connect)
        self._wake = asyncio.Event()
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._last: TickSummary | None = None
        self._last_full = float("-inf")
        self._history = SchedulingHistory(
            settings.default_runtime_minutes, settings.fair_share_half_life_hours
        )
        self._recorded_policy = False
        self._headroom: dict[str, int] | None = None
        self._capacity_seen: Capacity | None = None

    @property
    def history(self) -> SchedulingHistory:
        return self._history

    @property
    def last_headroom(self) -> dict[str, int] | None:
        """Free GPUs per type by the loop's last capacity reading (None: none yet)."""
        return self._headroom

    @property
    def last_capacity(self) -> Capacity | None:
        """The loop's last capacity reading (None: none yet)."""
        return self._capacity_seen

    async def _connect(self) -> asyncpg.Connection:
        if self._dsn is not None:
            return await asyncpg.connect(self._dsn)
        # No DSN given: open a connection like the pool's own (not one of the pool's).
        args: tuple[Any, ...] = getattr(self._pool, "_connect_args", ())
        kwargs: dict[str, Any] = getattr(self._pool, "_connect_kwargs", {})
        return await asyncpg.connect(*args, **kwargs)

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._watcher is not None:
            self._subscription = self._watcher.subscribe()
            self._wake = self._subscription.event
        self._task = asyncio.create_task(self._run(), name="ftq-admission-loop")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        await self._leadership.release()
        metrics.IS_LEADER.set(0)

    def wake(self) -> None:
        self._wake.set()

    def status(self) -> SchedulerStatus:
        return SchedulerStatus(
            self._leadership.is_leader,
            self._paused,
            self._last,
            self._settings.policy,
            self._headroom,
        )

    async def record_policy(self) -> None:
        """Record the policy and limits this leader admits with, if the log's last record
        differs (a leader starting with them, or a changed configuration)."""
        command = RecordPolicy(
            at=self._ctx.clock(),
            policy=self._settings.policy,
            settings=policy_record(self._settings),
        )
        await run_command(
            self._pool, SCHEDULER, SCHEDULER_STREAM, command, {"actor": "admission-loop"}
        )
        self._recorded_policy = True

    async def _run(self) -> None:
        while True:
            if not await self._leadership.acquire():
                metrics.IS_LEADER.set(0)
                await asyncio.sleep(self._follower_retry_s)
                continue
            metrics.IS_LEADER.set(1)
            self._wake.clear()
            if not self._recorded_policy:
                try:
                    await self.record_policy()
                except Exception:
                    log.exception("admission.policy_record_failed")
                    await asyncio.sleep(self._follower_retry_s)
                    continue
            due = time.monotonic() - self._last_full >= self._settings.reconcile_seconds
            try:
                async with asyncio.timeout(self._tick_limit_s):
                    await self.tick(full_reconcile=due)
            except TimeoutError:
                # Cancelling mid-admission is safe: an open admission is resolved by whoever
                # leads next. Step down so a healthy replica can.
                log.error("admission.tick_stuck", limit_s=self._tick_limit_s)
                await self._leadership.release()
                metrics.IS_LEADER.set(0)
                self._recorded_policy = False
                await asyncio.sleep(self._follower_retry_s * 5)
                continue
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self._settings.reconcile_seconds, 5.0)):
                        await self._wake.wait()
            await asyncio.sleep(DEBOUNCE_S)  # let a burst of appends land: one pass for all

    async def tick(self, *, full_reconcile: bool = True) -> TickSummary:
        """One pass: reconcile, read capacity, plan, admit. Never raises (but cancellation)."""
        started_at, t0 = self._ctx.clock(), time.perf_counter()
        counts: Counter[str] = Counter()
        capacity: Capacity | None = None
        error: str | None = None
        try:
            counts += await reconcile(self._ctx, full=full_reconcile)
            if full_reconcile:
                self._last_full = time.monotonic()
                self._blocked.clear()
                await self._housekeeping.run_if_due()
                counts += await check_running_jobs(self._ctx, self._settings)
            counts["dependency_failed"] += await fail_broken_dependents(self._ctx)
            capacity = await self._admit_planned(counts)
        except Exception as exc:
            log.exception("admission.tick_failed")
            error = f"{type(exc).__name__}: {exc}"
        summary = TickSummary(
            started_at=started_at,
            duration_ms=(time.perf_counter() - t0) * 1000,
            reconciled=counts["reconciled"],
            admitted=counts["admitted"],
            returned=counts["returned"],
            failed=counts["failed"],
            cancelled=counts["cancelled"],
            dependency_failed=counts["dependency_failed"],
            quota=capacity.quota if capacity else 0,
            in_use=capacity.in_use if capacity else 0,
            available=capacity.available if capacity else 0,
            error=error,
        )
        self._last = summary
        _observe_metrics(summary)
        return summary

    async def _admit_planned(self, counts: Counter[str]) -> Capacity:
        """Admit what the plan allows, one job at a time, deciding each under the gate.

        Each admission is decided afresh, in one transaction holding the admission gate
        exclusively: read the queue, the jobs in PROGRESS, the caps and the pause flag, plan
        with the policy (events.domain.scheduling), and record AdmissionStarted for the
        plan's first job with the planner's evidence. The transitions that free a user's slot
        and cap changes take the gate too (projections.recorder), so none of them overlaps a
        decision, and the log orders each before or after it as it happened; the audit reads
        the log in that order. A plan made once per pass went on admitting jobs that had
        stopped being first when one of its own admissions was refused or an outside cancel
        freed a slot (`make soak` caught it).

        The headroom per GPU type is read once per pass, outside the gate (it may ask
        Fireworks), and what the pass admits is subtracted from it, so a Fireworks usage
        reading that does not show this pass's jobs yet can never over-commit a quota.
        Runtime estimates and usage come from the log, read incrementally."""
        settings = self._settings
        async with self._pool.acquire() as conn:
            await self._history.catch_up(conn)
            inputs = await load_planner_inputs(conn)
            capacity = await self._capacity.read(conn, ftq_in_use=inputs.gpus_by_type())
        if capacity.note:
            log.warning("admission.capacity_degraded", note=capacity.note)
        self._headroom = capacity.headroom()
        self._capacity_seen = capacity
        taken: Counter[str] = Counter()  # GPUs per type of this pass's admissions
        tried: set[str] = set()  # each job at most once a pass (no livelock on a stuck one)
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                await hold_admission_gate(conn)
                inputs = await load_planner_inputs(conn)
                self._paused = inputs.paused
                if self._paused:
                    return capacity
                now = self._ctx.clock()
                p = pass_inputs(inputs, settings, self._history, now)
                headroom = {t: max(0, n - taken[t]) for t, n in capacity.headroom().items()}
                first = await first_admission(conn, p, headroom, blocked=self._blocked)
                if first is None or first.job.job_id in tried:
                    return capacity
                tried.add(first.job.job_id)
                pool = capacity.pools.get(first.job.gpu_type, Pool(0, 0, 0))
                reason = admission_reason(
                    first, settings.policy, pool, taken[first.job.gpu_type], capacity.source
                )
                reason = msgspec.structs.replace(
                    reason, big_job_reserve=p.limits.reserve_for(first.size_class)
                )
                try:
                    state = await start(self._ctx, conn, first.job.job_id, reason)
                except SecretsBlocked as exc:
                    self._housekeeping.blocked(exc.job_id, exc.why)
                    self._blocked.add(exc.job_id)
                    continue
            if state is None:
                counts["skipped"] += 1
                continue
            await self._ctx.checkpoint("admission_started", state.job_id)
            outcome = await create(self._ctx, state)
            counts[outcome] += 1
            if outcome in ("admitted", "cancelled"):  # created on Fireworks: its GPUs count
                taken[first.job.gpu_type] += first.job.gpu_count
            if outcome == "returned":
                self._capacity.invalidate()  # Fireworks knows better than our reading
            if outcome in ("returned", "open"):
                return capacity  # quota refused or Fireworks unreachable: end the pass


def admission_reason(
    first: Admission, policy: str, pool: Pool, taken: int, source: str
) -> AdmissionReason:
    """What the admission event records: the headroom of the job's GPU type, and the
    planner's evidence (class, cap, load, reservation, estimate, usage)."""
    res = first.reservation
    return AdmissionReason(
        policy=policy,
        quota=pool.quota,
        in_use=pool.in_use + taken,
        available=first.available_before,
        queue_position=first.queue_position,
        headroom_source=source,
        gpu_type=first.job.gpu_type,
        size_class=first.size_class,
        cap=first.cap,
        user_load=first.user_load,
        reservation_job=res.job_id if res else None,
        reservation_at=res.at if res else None,
        reservation_spare=res.spare if res else None,
        spare_before=first.spare_before,
        estimate_s=first.estimate_s,
        usage=first.usage,
        holders=list(first.holders),
    )


def _observe_metrics(summary: TickSummary) -> None:
    """The pass's duration and GPU gauges. Admissions and Fireworks errors are counted where
    they happen (service.metrics.count_recorded, the Fireworks client), never from a pass's
    outcomes (which call every observed running job "admitted")."""
    metrics.TICK_SECONDS.observe(summary.duration_ms / 1000)
    metrics.GPUS_QUOTA.set(summary.quota)
    metrics.GPUS_IN_USE.set(summary.in_use)
    metrics.GPUS_AVAILABLE.set(summary.available)
