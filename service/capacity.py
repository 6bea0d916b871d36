"""Live GPU headroom per GPU type: the training quota Fireworks enforces, what is in use,
what is free.

A job's `gpu_type` picks its quota, `training-<type>-count` (or only FIREWORKS_QUOTA_ID).
Per type: limit = the quota's `value`, capped by FIREWORKS_GPU_QUOTA; when the quotas cannot
be read, FIREWORKS_GPU_QUOTA alone, as the quota of FTQ_DEFAULT_GPU_TYPE. In use =
max(Fireworks' reported usage, GPUs of ftq's own PROGRESS jobs of that type): a stale usage
counter must never let ftq over-admit, and jobs started outside ftq show up in the usage.

The admission loop reads (`read`: asks Fireworks when the ~1 s cache is stale). Request paths
only `peek`: the last reading, never waiting on Fireworks; a stale one is refreshed by a task
of its own in the background."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal

import msgspec
import structlog

from events.domain.scheduling import GPU_TYPES
from events.store.log import Connection
from service.clock import utcnow
from service.fireworks import FireworksClient, FireworksError, Quota
from service.settings import Settings
from service.sql import QUERIES

log = structlog.get_logger(__name__)

CACHE_SECONDS = 1.0
Source = Literal["fireworks-quotas", "config"]


class Pool(msgspec.Struct, frozen=True):
    """The headroom of one GPU type."""

    quota: int
    in_use: int
    available: int
    fireworks_usage: float | None = None
    ftq_in_use: int = 0


class Capacity(msgspec.Struct, frozen=True):
    """One reading of the headroom; `note` says why it is what it is when it is degraded.
    `quota`, `in_use`, `available` are the sums over `pools` (GPU type -> Pool)."""

    quota: int
    in_use: int
    available: int
    source: Source
    observed_at: datetime
    fireworks_usage: float | None
    ftq_in_use: int
    pools: dict[str, Pool] = msgspec.field(default_factory=dict)
    note: str | None = None

    def headroom(self) -> dict[str, int]:
        return {t: p.available for t, p in self.pools.items()}

    def headroom_with(self, ftq_in_use: Mapping[str, int]) -> dict[str, int]:
        """The headroom by this reading's quotas and Fireworks usage, with ftq's own jobs in
        PROGRESS as they are now (a reading taken before a pass's admissions knows nothing
        of them, and Fireworks' usage counter may lag them)."""
        out: dict[str, int] = {}
        for t in set(self.pools) | set(ftq_in_use):
            pool = self.pools.get(t, Pool(0, 0, 0))
            seen = pool.fireworks_usage
            used = max(ftq_in_use.get(t, 0), int(seen + 0.5) if seen is not None else 0)
            out[t] = max(0, pool.quota - used)
        return out


class _Reading(msgspec.Struct, frozen=True):
    """What Fireworks' quotas said per GPU type (limit, usage), or why they could not be
    read."""

    limits: dict[str, int] | None
    usage: dict[str, float] | None
    error: str | None = None


def quota_type(quota_id: str) -> str | None:
    """`training-b200-count` -> `b200`; None for any other quota."""
    if quota_id.startswith("training-") and quota_id.endswith("-count"):
        return quota_id.removeprefix("training-").removesuffix("-count") or None
    return None


def is_training_quota(quota: Quota, quota_id: str | None) -> bool:
    qid = quota.quota_id or ""
    if quota_id:
        return qid == quota_id
    return quota_type(qid) is not None


async def ftq_gpus_by_type(conn: Connection) -> dict[str, int]:
    """GPUs of ftq's own PROGRESS jobs per GPU type."""
    return {r[0]: r[1] for r in await conn.fetch(QUERIES["progress_gpus_by_type"])}


class CapacityReader:
    """Reads the headroom; the Fireworks part is cached ~1 s so callers do not hammer it."""

    def __init__(
        self,
        client: FireworksClient | None,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        cache_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cached: tuple[float, _Reading] | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Stop a background refresh still waiting on Fireworks."""
        task, self._refresh = self._refresh, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def invalidate(self) -> None:
        """Forget the cached Fireworks reading (e.g. after Fireworks refused for quota)."""
        self._cached = None

    async def read(
        self, conn: Connection, *, ftq_in_use: Mapping[str, int] | None = None
    ) -> Capacity:
        """The headroom now; `ftq_in_use` (per type) saves a query when the caller has it."""
        if ftq_in_use is None:
            ftq_in_use = await ftq_gpus_by_type(conn)
        return self._capacity(await self._fireworks(), ftq_in_use)

    def peek(self, ftq_in_use: Mapping[str, int]) -> Capacity:
        """The headroom by the last Fireworks reading, whatever its age, without waiting on
        Fireworks (request paths); a stale reading is refreshed in the background."""
        cached = self._cached
        if cached is None or self._monotonic() - cached[0] >= self._cache_seconds:
            self._refresh_in_background()
        reading = _Reading(None, None, "not read yet") if cached is None else cached[1]
        return self._capacity(reading, ftq_in_use)

    def _refresh_in_background(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            return
        try:
            self._refresh = asyncio.get_running_loop().create_task(
                self._refresh_once(), name="ftq-capacity-refresh"
            )
        except RuntimeError:  # no running loop (sync caller): nothing to refresh with
            self._refresh = None

    async def _refresh_once(self) -> None:
        try:
            await self._fireworks()
        except Exception:  # a background refresh never raises into nowhere
            log.exception("capacity.refresh_failed")

    def _capacity(self, reading: _Reading, ftq_in_use: Mapping[str, int]) -> Capacity:
        settings = self._settings
        configured = settings.fireworks_gpu_quota
        note: str | None = None
        source: Source
        if reading.limits is not None:
            source = "fireworks-quotas"
            limits = {
                t: (n if configured is None else min(n, configured))
                for t, n in reading.limits.items()
            }
        else:
            source = "config"
            limits = {settings.default_gpu_type: configured or 0}
            if configured is None:
                note = (
                    f"GPU quota unknown ({reading.error}); FIREWORKS_GPU_QUOTA unset: admit nothing"
                )
            else:
                note = f"GPU quota from FIREWORKS_GPU_QUOTA ({reading.error})"
        usage = reading.usage or {}
        pools: dict[str, Pool] = {}
        for gpu_type in sorted(set(limits) | set(ftq_in_use)):
            limit = limits.get(gpu_type, 0)
            ours = ftq_in_use.get(gpu_type, 0)
            seen = usage.get(gpu_type)
            in_use = max(ours, int(seen + 0.5) if seen is not None else 0)
            pools[gpu_type] = Pool(limit, in_use, max(0, limit - in_use), seen, ours)
        total_usage = sum(usage.values()) if reading.usage is not None else None
        return Capacity(
            quota=sum(p.quota for p in pools.values()),
            in_use=sum(p.in_use for p in pools.values()),
            available=sum(p.available for p in pools.values()),
            source=source,
            observed_at=self._clock(),
            fireworks_usage=total_usage,
            ftq_in_use=sum(ftq_in_use.values()),
            pools=pools,
            note=note,
        )

    async def _fireworks(self) -> _Reading:
        now = self._monotonic()
        if self._cached is not None and now - self._cached[0] < self._cache_seconds:
            return self._cached[1]
        reading = await self._read_quotas()
        self._cached = (self._monotonic(), reading)
        return reading

    async def _read_quotas(self) -> _Reading:
        if self._client is None:
            return _Reading(None, None, "no Fireworks client")
        try:
            quotas = await self._client.list_quotas()
        except FireworksError as exc:
            log.warning("capacity.quotas_unreadable", status=exc.status, error=exc.message)
            return _Reading(None, None, f"quotas unreadable: {exc.status or 'network'}")
        wanted = self._settings.fireworks_quota_id
        limits: dict[str, int] = {}
        usage: dict[str, float] = {}
        for q in quotas:
            qid = q.quota_id or ""
            gpu_type = quota_type(qid)
            if not is_training_quota(q, wanted) or gpu_type is None or gpu_type not in GPU_TYPES:
                continue
            limits[gpu_type] = limits.get(gpu_type, 0) + q.limit
            usage[gpu_type] = usage.get(gpu_type, 0.0) + (q.usage or 0.0)
        if not limits:
            name = wanted or "training-<type>-count"
            log.warning("capacity.no_training_quota", wanted=name)
            return _Reading(None, None, f"no {name} quota on the account")
        return _Reading(limits, usage)
