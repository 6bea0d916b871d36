"""Read what the planner needs from the projections: the queue in FIFO order and user load."""

from __future__ import annotations

from events.store import Connection
from service.admission.plan import Load, Plan, QueuedJob, plan
from service.sql import QUERIES


async def load_queue(conn: Connection) -> list[QueuedJob]:
    return [QueuedJob(r[0], r[1], r[2], r[3]) for r in await conn.fetch(QUERIES["queue"])]


async def load_user_load(conn: Connection, default_cap: int) -> tuple[Load, int]:
    """Per-user PROGRESS counts and caps, and the GPUs of ftq's own jobs in PROGRESS."""
    rows = await conn.fetch(QUERIES["user_load"])
    caps = {r[0]: r[1] for r in await conn.fetch(QUERIES["user_caps"])}
    progress = {r[0]: r[1] for r in rows}
    return Load(progress=progress, caps=caps, default_cap=default_cap), sum(r[2] for r in rows)


async def is_paused(conn: Connection) -> bool:
    return bool(await conn.fetchval(QUERIES["scheduler_paused"]))


async def explain_queue(conn: Connection, *, available: int, default_cap: int, policy: str) -> Plan:
    """The plan an admission pass would make now, with every queued job's position and reason
    (for GET /queue and GET /jobs/{id}); nothing is admitted by calling this."""
    queue = await load_queue(conn)
    load, _ = await load_user_load(conn, default_cap)
    return plan(queue, load, available, policy=policy, paused=await is_paused(conn))
