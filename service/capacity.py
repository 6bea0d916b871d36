"""Live GPU headroom: the training quota Fireworks enforces, what is in use, what is free.

limit = sum of the `value` of the `training-*-count` quotas (or only FIREWORKS_QUOTA_ID),
capped by FIREWORKS_GPU_QUOTA; FIREWORKS_GPU_QUOTA alone when the quotas cannot be read.
in use = max(Fireworks' reported usage, GPUs of ftq's own PROGRESS jobs): a stale usage
counter must never let ftq over-admit, and jobs started outside ftq show up in the usage."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import msgspec
import structlog

from events.store.log import Connection
from service.admission.queue import load_planner_inputs
from service.fireworks import FireworksClient, FireworksError, Quota
from service.settings import Settings

log = structlog.get_logger(__name__)

CACHE_SECONDS = 1.0
Source = Literal["fireworks-quotas", "config"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Capacity(msgspec.Struct, frozen=True):
    """One reading of the headroom; `note` says why it is what it is when it is degraded."""

    quota: int
    in_use: int
    available: int
    source: Source
    observed_at: datetime
    fireworks_usage: float | None
    ftq_in_use: int
    note: str | None = None


class _Reading(msgspec.Struct, frozen=True):
    """What Fireworks' quotas said (limit, usage), or why they could not be read."""

    limit: int | None
    usage: float | None
    error: str | None = None


def is_training_quota(quota: Quota, quota_id: str | None) -> bool:
    qid = quota.quota_id or ""
    if quota_id:
        return qid == quota_id
    return qid.startswith("training-") and qid.endswith("-count")


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

    def invalidate(self) -> None:
        """Forget the cached Fireworks reading (e.g. after Fireworks refused for quota)."""
        self._cached = None

    async def read(self, conn: Connection, *, ftq_in_use: int | None = None) -> Capacity:
        """The headroom now; `ftq_in_use` saves a query when the caller already has it."""
        if ftq_in_use is None:
            ftq_in_use = (await load_planner_inputs(conn, self._settings.default_cap)).ftq_gpus
        reading = await self._fireworks()
        configured = self._settings.fireworks_gpu_quota
        note: str | None = None
        source: Source
        if reading.limit is not None:
            source = "fireworks-quotas"
            limit = reading.limit if configured is None else min(reading.limit, configured)
        else:
            source = "config"
            limit = configured or 0
            if configured is None:
                note = (
                    f"GPU quota unknown ({reading.error}); FIREWORKS_GPU_QUOTA unset: admit nothing"
                )
            else:
                note = f"GPU quota from FIREWORKS_GPU_QUOTA ({reading.error})"
        usage = reading.usage
        in_use = max(ftq_in_use, int(usage + 0.5) if usage is not None else 0)
        return Capacity(
            quota=limit,
            in_use=in_use,
            available=max(0, limit - in_use),
            source=source,
            observed_at=self._clock(),
            fireworks_usage=usage,
            ftq_in_use=ftq_in_use,
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
        chosen = [q for q in quotas if is_training_quota(q, self._settings.fireworks_quota_id)]
        if not chosen:
            wanted = self._settings.fireworks_quota_id or "training-*-count"
            log.warning("capacity.no_training_quota", wanted=wanted)
            return _Reading(None, None, f"no {wanted} quota on the account")
        usage = sum(q.usage or 0.0 for q in chosen)
        return _Reading(sum(q.limit for q in chosen), usage)
