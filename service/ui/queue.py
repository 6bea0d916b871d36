"""The queue page (the landing page): capacity, QUEUED jobs in admission order (others'
anonymised as GET /queue shows them) and PROGRESS jobs with their Fireworks state. The body
is re-fetched whenever the log stream says a job changed."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, Final

from litestar import Request, get
from litestar.response import Template

from events.domain.scheduling.model import DEFAULT_GPU_TYPE
from events.store.log import head_cursor
from service.api import views
from service.api.views import placements
from service.capacity import ftq_gpus_by_type
from service.ui.web import Signed, signed_in

MAX_PLAN_AGE_S: Final = 10.0
DB_TIMEOUT_S: Final = 2.0
SHOWN_QUEUED: Final = 100  # the head of the queue, plus every job of the caller's own
_QUEUED: Final = """
SELECT j.id::text, j.user_id::text, j.user_email, j.kind, j.gpu_count, j.display_name,
       j.created_at, coalesce(s.gpu_type, $1)
FROM jobs j LEFT JOIN job_scheduling s ON s.job_id = j.id
WHERE j.state = 'QUEUED' ORDER BY j.created_at, j.id
"""
_PROGRESS: Final = """
SELECT id::text, user_id::text, user_email, kind, gpu_count, display_name, started_at,
       fireworks_state, progress
FROM jobs WHERE state = 'PROGRESS' ORDER BY started_at NULLS LAST, id
"""


def eta_text(at: datetime, now: datetime) -> str:
    """`in 25m (14:05 UTC)`: how long until the forecast admission, and when."""
    left = (at - now).total_seconds()
    when = at.strftime("%H:%M UTC") if left < 86400 else at.strftime("%Y-%m-%d %H:%M UTC")
    return f"in {age(now, at)} ({when})" if left > 0 else f"any moment ({when})"


def age(at: datetime | None, now: datetime) -> str:
    if at is None:
        return ""
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


async def _capacity(signed: Signed) -> tuple[int, int] | None:
    """In use and quota by the last capacity reading (never waiting on Fireworks)."""
    try:
        async with asyncio.timeout(DB_TIMEOUT_S), signed.runtime.pool.acquire() as conn:
            c = signed.runtime.capacity.peek(await ftq_gpus_by_type(conn))
    except (TimeoutError, OSError):
        return None
    return c.in_use, c.quota


async def _placement(signed: Signed, rows: list[Any]) -> views.Placement:
    """The latest plan while every queued row is in it and it is under MAX_PLAN_AGE_S old
    (a stale one is refreshed in the background: the page is live, the next update shows
    the new plan); otherwise one made after the read, as GET /queue does. Rows that left
    the queue are gone from `rows` already."""
    runtime = signed.runtime
    snapshot: views.PlanSnapshot | None = runtime.plan_snapshot
    if snapshot is not None and time.monotonic() - snapshot.taken_at < MAX_PLAN_AGE_S:
        known = snapshot.placement
        if all(r[0] in known for r in rows):
            if time.monotonic() - snapshot.taken_at > snapshot.fresh_for_s:
                views._refresh_in_background(runtime)
            return known
    return await placements(runtime)


async def queued(signed: Signed) -> tuple[list[dict[str, Any]], int]:
    """The head of the queue and the caller's own queued jobs in admission order (others'
    anonymised as GET /queue shows them), and how many are queued in all."""
    rows = await signed.runtime.pool.fetch(_QUEUED, DEFAULT_GPU_TYPE)  # no row: the default
    placement = await _placement(signed, rows)
    forecaster = signed.runtime.eta  # service.eta: the background forecast, never made here
    etas = forecaster.forecast.etas if forecaster is not None and forecaster.forecast else {}
    entries = []
    for r in rows:
        if r[0] not in placement:
            continue  # it left the queue meanwhile
        position, reason = placement[r[0]]
        mine = r[1] == signed.caller.user_id
        if position > SHOWN_QUEUED and not mine:
            continue
        visible = mine or signed.caller.is_admin
        entries.append(
            {
                "id": r[0],
                "mine": mine,
                "user": r[2] if visible else None,
                "kind": r[3],
                "gpu_count": r[4],
                "display_name": r[5],
                "created_at": r[6],
                "queue_position": position,
                "pending_reason": reason,
                "gpu_type": r[7],
                "eta": etas.get(r[0]),
            }
        )
    entries.sort(key=lambda e: int(e["queue_position"]))
    return entries, len(placement)


async def body_context(signed: Signed) -> dict[str, Any]:
    entries, total = await queued(signed)
    rows = await signed.runtime.pool.fetch(_PROGRESS)
    visible = signed.caller.is_admin
    running = [
        {
            "id": r[0],
            "mine": r[1] == signed.caller.user_id,
            "user": r[2] if visible or r[1] == signed.caller.user_id else None,
            "kind": r[3],
            "gpus": r[4],
            "name": r[5] if visible or r[1] == signed.caller.user_id else None,
            "started_at": r[6],
            "fireworks_state": r[7] or "starting",
            "progress": None if r[8] is None else round(float(r[8]) * 100 if r[8] <= 1 else r[8]),
        }
        for r in rows
    ]
    return {
        "queued": entries,
        "queued_total": total,
        "shown_queued": SHOWN_QUEUED,
        "running": running,
        "capacity": await _capacity(signed),
        "now": signed.runtime.clock(),
        "age": age,
        "eta_text": eta_text,
    }


@get("/ui/queue", include_in_schema=False)
async def queue_page(request: Request[Any, Any, Any]) -> Template:
    signed = await signed_in(request)
    async with signed.runtime.pool.acquire() as conn:
        head = (await head_cursor(conn)).position
    context = signed.context("queue", after=head, **await body_context(signed))
    return Template("queue.html", context=context)


@get("/ui/queue/body", include_in_schema=False)
async def queue_body(request: Request[Any, Any, Any]) -> Template:
    signed = await signed_in(request)
    return Template(
        "queue_body.html", context=signed.context("queue", **await body_context(signed))
    )


ROUTES: Final = [queue_page, queue_body]
