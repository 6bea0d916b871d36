"""The queue, capacity, health, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Final

import asyncpg
import structlog
from litestar import MediaType, Response, get

from events.domain.scheduling import POLICIES
from service.admission.queue import is_paused
from service.api.auth import CallerDep, authenticate_request
from service.api.common import RuntimeDep, errors
from service.api.errors import ApiError
from service.api.schemas import POLICY_HEADER, CapacityType, CapacityView, Health, QueueEntry
from service.api.views import decode_payload, placements
from service.database import is_migrated
from service.eta import with_etas
from service.metrics import (
    GPUS_AVAILABLE,
    GPUS_IN_USE,
    GPUS_QUOTA,
    IS_LEADER,
    JOBS_IN_PROGRESS,
    POLICY,
    QUEUE_DEPTH,
    SCHEDULER_PAUSED,
    STUCK_JOBS,
    exposition,
)
from service.redaction import redact
from service.sql import QUERIES

CAPACITY_TIMEOUT_S: Final = 10.0
log = structlog.get_logger(__name__)
READY_TIMEOUT_S: Final = 3.0


@get(
    "/queue",
    summary="QUEUED jobs in admission order",
    before_request=authenticate_request,
    responses=errors(),
)
async def queue(caller: CallerDep, runtime: RuntimeDep) -> Response[list[QueueEntry]]:
    rows = await runtime.pool.fetch(QUERIES["api_queued_jobs"])
    placement = await placements(runtime)  # planned after the read: every row is in it...
    entries = []
    for r in rows:
        job_id, user_id, email = r[0], r[1], r[2]
        if job_id not in placement:
            continue  # ...unless it has left the queue meanwhile
        mine = user_id == caller.user_id
        visible = mine or caller.is_admin
        position, reason = placement[job_id]
        entries.append(
            QueueEntry(
                id=job_id,
                kind=r[3],
                gpu_count=r[4],
                display_name=r[5],
                created_at=r[6],
                queue_position=position,
                pending_reason=reason,
                mine=mine,
                user=email if visible else None,
                fireworks_payload=redact(decode_payload(r[7])) if visible else None,
                gpu_type=r[8],
                priority=r[9],
            )
        )
    entries.sort(key=lambda e: e.queue_position)
    return Response(
        with_etas(runtime.eta, entries), headers={POLICY_HEADER: runtime.settings.policy}
    )


@get(
    "/capacity",
    summary="GPU headroom now",
    before_request=authenticate_request,
    responses=errors(503),
)
async def capacity(runtime: RuntimeDep) -> CapacityView:
    try:
        async with asyncio.timeout(CAPACITY_TIMEOUT_S), runtime.pool.acquire() as conn:
            c = await runtime.capacity.read(conn)
    except TimeoutError:
        raise ApiError(503, "UNAVAILABLE", "capacity could not be read in time") from None
    GPUS_QUOTA.set(c.quota)
    GPUS_IN_USE.set(c.in_use)
    GPUS_AVAILABLE.set(c.available)
    return CapacityView(
        quota=c.quota,
        in_use=c.in_use,
        available=c.available,
        source=c.source,
        observed_at=c.observed_at,
        note=c.note,
        types={
            t: CapacityType(quota=p.quota, in_use=p.in_use, available=p.available)
            for t, p in c.pools.items()
        },
    )


@get("/healthz", summary="Process alive")
async def healthz() -> Health:
    return Health(status="ok")


@get("/readyz", summary="Database reachable and migrated", responses=errors(503))
async def readyz(runtime: RuntimeDep) -> Health:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), runtime.pool.acquire() as conn:
            await conn.fetchval(QUERIES["api_ping"])
            migrated = await is_migrated(conn)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("readyz.database_unreachable", error_type=type(exc).__name__)
        raise ApiError(503, "UNAVAILABLE", "database unreachable") from None
    if not migrated:
        raise ApiError(503, "UNAVAILABLE", "database not migrated")
    return Health(status="ready")


@get("/metrics", summary="Prometheus metrics", media_type=MediaType.TEXT)
async def metrics(runtime: RuntimeDep) -> Response[bytes]:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), runtime.pool.acquire() as conn:
            QUEUE_DEPTH.set(await conn.fetchval(QUERIES["api_queue_depth"]))
            JOBS_IN_PROGRESS.set(await conn.fetchval(QUERIES["api_jobs_in_progress"]))
            SCHEDULER_PAUSED.set(1 if await is_paused(conn) else 0)
            STUCK_JOBS.set(await conn.fetchval(QUERIES["operations_stuck_count"]))
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("metrics.database_unreachable", error_type=type(exc).__name__)
    if runtime.loop is not None:
        IS_LEADER.set(1 if runtime.loop.status().leader else 0)
    for name in POLICIES:
        POLICY.labels(policy=name).set(1 if name == runtime.settings.policy else 0)
    body, content_type = exposition()
    return Response(body, media_type=content_type)


OPS_ROUTES: Final = [queue, capacity, healthz, readyz, metrics]
