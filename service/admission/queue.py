"""Read what the planner needs from the projections: the queue in FIFO order and user load."""

from __future__ import annotations

from typing import Final

import msgspec

from events.store.log import Connection
from service.admission.dependencies import load_waits
from service.admission.plan import Load, Plan, QueuedJob, plan
from service.sql import QUERIES

QUEUE_PAGE: Final = 500


async def _queue_page(conn: Connection, limit: int, after: QueuedJob | None) -> list[QueuedJob]:
    """The next `limit` QUEUED jobs in FIFO order after `after` (from the head if None)."""
    if after is None:
        rows = await conn.fetch(QUERIES["queue_head"], limit)
    else:
        rows = await conn.fetch(QUERIES["queue_after"], limit, after.created_at, after.job_id)
    return [QueuedJob(r[0], r[1], r[2], r[3]) for r in rows]


async def load_queue(conn: Connection, page: int = QUEUE_PAGE) -> list[QueuedJob]:
    """The whole queue in FIFO order, `page` jobs a read. Read at once, a long queue's rows
    are decoded in one go that holds the event loop, and every request in flight with it
    (100k queued: about 0.3 s every time the queue-position plan was refreshed). In a
    REPEATABLE READ transaction the pages are one snapshot."""
    queue: list[QueuedJob] = []
    while True:
        got = await _queue_page(conn, page, queue[-1] if queue else None)
        queue += got
        if len(got) < page:
            return queue


class PlannerInputs(msgspec.Struct, frozen=True):
    """What a plan needs besides the queue, read together (query `planner_inputs`)."""

    paused: bool
    load: Load
    ftq_gpus: int  # GPUs of ftq's own jobs in PROGRESS


async def load_planner_inputs(conn: Connection, default_cap: int) -> PlannerInputs:
    rows = await conn.fetch(QUERIES["planner_inputs"])
    progress = {r[1]: r[2] for r in rows if r[2]}
    caps = {r[1]: r[4] for r in rows if r[4] is not None}
    return PlannerInputs(
        paused=bool(rows[0][0]),
        load=Load(progress=progress, caps=caps, default_cap=default_cap),
        ftq_gpus=sum(r[3] or 0 for r in rows),
    )


async def is_paused(conn: Connection) -> bool:
    return bool(await conn.fetchval(QUERIES["scheduler_paused"]))


FIRST_CHUNK = 256


async def plan_admissions(
    conn: Connection, load: Load, available: int, *, policy: str
) -> tuple[Plan, int]:
    """The admissions a pass makes now, and how many queued jobs it read.

    Without explanations a pass stops at the first job that blocks (strict FIFO) or when the
    GPUs run out, so it reads the head of the queue in growing chunks, each one going on
    after the last job of the one before (no row is read twice), instead of all of it; the
    result equals planning over the whole queue. Jobs waiting for others (`after`) are left
    out before planning (events.domain.scheduling.dependencies)."""
    waits = await load_waits(conn)  # jobs waiting for others (`after`) are not eligible
    queue: list[QueuedJob] = []
    last: QueuedJob | None = None
    read = 0
    limit = FIRST_CHUNK
    while True:
        got = await _queue_page(conn, limit, last)
        read += len(got)
        last = got[-1] if got else last
        queue += waits.split(got)[0] if waits.after else got
        chosen = plan(queue, load, available, policy=policy, explain=False)
        stopped = chosen.available_after <= 0 or chosen.blocker is not None
        if len(got) < limit or stopped:
            return chosen, read
        limit *= 4
