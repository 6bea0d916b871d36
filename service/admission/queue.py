"""Read what the planner needs from the projections: the queue in FIFO order and user load."""

from __future__ import annotations

import msgspec

from events.store import Connection
from service.admission.plan import Load, Plan, QueuedJob, plan
from service.sql import QUERIES


async def load_queue(conn: Connection) -> list[QueuedJob]:
    return [QueuedJob(r[0], r[1], r[2], r[3]) for r in await conn.fetch(QUERIES["queue"])]


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


async def load_user_load(conn: Connection, default_cap: int) -> tuple[Load, int]:
    """Per-user PROGRESS counts and caps, and the GPUs of ftq's own jobs in PROGRESS."""
    inputs = await load_planner_inputs(conn, default_cap)
    return inputs.load, inputs.ftq_gpus


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
    result equals planning over the whole queue."""
    queue: list[QueuedJob] = []
    limit = FIRST_CHUNK
    while True:
        if queue:
            last = queue[-1]
            rows = await conn.fetch(QUERIES["queue_after"], limit, last.created_at, last.job_id)
        else:
            rows = await conn.fetch(QUERIES["queue_head"], limit)
        queue.extend(QueuedJob(r[0], r[1], r[2], r[3]) for r in rows)
        chosen = plan(queue, load, available, policy=policy, explain=False)
        stopped = chosen.available_after <= 0 or chosen.blocker is not None
        if len(rows) < limit or stopped:
            return chosen, len(queue)
        limit *= 4
