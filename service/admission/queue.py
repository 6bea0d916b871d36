"""Read what the planner needs from the projections, as the domain planner's types:
the queue (`Job`s in FIFO order), the jobs in PROGRESS, per-user caps per size class and
fair-share weights, and whether admission is paused; and build one pass from them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from events.domain.scheduling import (
    Admission,
    Estimate,
    Job,
    Limits,
    Pass,
    Plan,
    Policy,
    Running,
    policy_order,
)
from events.store.log import Connection
from service.admission.dependencies import load_waits
from service.admission.history import SchedulingHistory
from service.settings import Settings
from service.sql import QUERIES

QUEUE_PAGE: Final = 500
FIRST_CHUNK: Final = 256


async def _queue_page(conn: Connection, limit: int, after: Job | None) -> list[Job]:
    """The next `limit` QUEUED jobs in FIFO order after `after` (from the head if None)."""
    if after is None:
        rows = await conn.fetch(QUERIES["queue_head"], limit)
    else:
        rows = await conn.fetch(QUERIES["queue_after"], limit, after.created_at, after.job_id)
    return [Job(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]


async def load_queue(conn: Connection, page: int = QUEUE_PAGE) -> list[Job]:
    """The whole queue in FIFO order, `page` jobs a read. Read at once, a long queue's rows
    are decoded in one go that holds the event loop, and every request in flight with it
    (100k queued: about 0.3 s). In a REPEATABLE READ transaction the pages are one snapshot."""
    queue: list[Job] = []
    while True:
        got = await _queue_page(conn, page, queue[-1] if queue else None)
        queue += got
        if len(got) < page:
            return queue


async def queue_in_chunks(conn: Connection) -> AsyncIterator[Job]:
    """The queue in FIFO order, read in growing chunks (each after the last job of the one
    before: no row is read twice), for a pass that usually stops near the head."""
    limit = FIRST_CHUNK
    last: Job | None = None
    while True:
        got = await _queue_page(conn, limit, last)
        for job in got:
            yield job
        if len(got) < limit:
            return
        last = got[-1]
        limit *= 4


class RunningRow(msgspec.Struct, frozen=True, gc=False):
    job_id: str
    user_id: str
    gpu_count: int
    gpu_type: str
    kind: str
    started_at: datetime | None
    max_runtime_minutes: int | None = None


class PlannerInputs(msgspec.Struct, frozen=True):
    """What a plan needs besides the queue (query `planner_inputs`)."""

    paused: bool
    running: list[RunningRow]
    user_caps: dict[tuple[str, str], int | None]
    weights: dict[str, float]
    priorities: bool = False  # a QUEUED job has a priority other than the default

    def gpus_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.running:
            out[r.gpu_type] = out.get(r.gpu_type, 0) + r.gpu_count
        return out


async def load_planner_inputs(conn: Connection) -> PlannerInputs:
    """One round trip (query `planner_inputs`)."""
    row = await conn.fetchrow(QUERIES["planner_inputs"])
    assert row is not None
    running = [
        RunningRow(r[0], r[1], r[2], r[3], r[4], _time(r[5]), r[6]) for r in _rows.decode(row[1])
    ]
    caps: dict[tuple[str, str], int | None] = {}
    weights: dict[str, float] = {}
    for user_id, small, big, unlimited, share in _rows.decode(row[2]):
        no_cap = set(unlimited or ())
        for size_class, cap in (("small", small), ("big", big)):
            if size_class in no_cap:
                caps[(user_id, size_class)] = None
            elif cap is not None:
                caps[(user_id, size_class)] = cap
        if share is not None:
            weights[user_id] = float(share)
    return PlannerInputs(bool(row[0]), running, caps, weights, bool(row[3]))


_rows: Final = msgspec.json.Decoder(list[list[Any]])


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def is_paused(conn: Connection) -> bool:
    return bool(await conn.fetchval(QUERIES["scheduler_paused"]))


@dataclass(frozen=True)
class PassInputs:
    """Everything one pass is made from besides the queue and the headroom."""

    running: list[Running]
    limits: Limits
    policy: Policy
    usage: dict[str, float]
    now: datetime
    paused: bool
    estimate: Estimate
    priorities: bool = False

    def new_pass(self, headroom: Mapping[str, int]) -> Pass:
        return Pass(
            self.running,
            headroom,
            self.limits,
            self.policy,
            self.now,
            estimate=self.estimate,
            usage=self.usage,
            paused=self.paused,
        )

    def order(self, queue: list[Job]) -> list[Job]:
        return policy_order(queue, self.policy, self.now, self.usage)

    def plan(self, queue: list[Job], headroom: Mapping[str, int], *, explain: bool) -> Plan:
        """A pass over the whole `queue` (any order)."""
        return self.new_pass(headroom).plan(self.order(queue), explain=explain)


def pass_inputs(
    inputs: PlannerInputs, settings: Settings, history: SchedulingHistory, now: datetime
) -> PassInputs:
    policy = settings.scheduling_policy(inputs.weights)
    running: list[Running] = []
    for r in inputs.running:
        started = r.started_at or now
        end = started  # read only by the policies that reserve (`Running`)
        if policy.reserves:
            job = Job(r.job_id, r.user_id, started, r.gpu_count, r.gpu_type, r.kind, 50,
                      r.max_runtime_minutes)  # fmt: skip
            end = history.expected_end(job, started, now)
        running.append(Running(r.job_id, r.user_id, r.gpu_count, started, end, r.gpu_type, r.kind))
    usage = history.usage(now, running) if policy.name == "fair-share" else {}
    return PassInputs(
        running,
        settings.limits(inputs.user_caps),
        policy,
        usage,
        now,
        inputs.paused,
        history.estimator.estimate,
        inputs.priorities,
    )


def needs_whole_queue(policy: Policy, priorities: bool) -> bool:
    """Whether the policy's order may differ from the FIFO order of the queue's rows."""
    return policy.name == "fair-share" or priorities


async def first_admission(
    conn: Connection,
    p: PassInputs,
    headroom: Mapping[str, int],
    *,
    blocked: frozenset[str] | set[str] = frozenset(),
) -> Admission | None:
    """The admission a pass makes first, deciding afresh: the policy's order over the whole
    queue when it can differ from FIFO, else the head of the queue read in chunks until the
    first job to admit or until nothing more can be admitted. Jobs in `blocked` (their
    secrets cannot be opened: service.secrets) and jobs waiting for others (`after`:
    events.domain.scheduling.dependencies) are left out, as if not queued."""
    pass_ = p.new_pass(headroom)
    if pass_.exhausted():
        return None
    waits = await load_waits(conn)  # jobs waiting for others (`after`) are not eligible
    if needs_whole_queue(p.policy, p.priorities):
        for job in p.order(await load_queue(conn)):
            if job.job_id in blocked or waits.holds(job.job_id):
                continue
            entry = pass_.step(job)
            if isinstance(entry, Admission):
                return entry
            if pass_.exhausted():
                return None
        return None
    async for job in queue_in_chunks(conn):
        if job.job_id in blocked or waits.holds(job.job_id):
            continue
        entry = pass_.step(job)
        if isinstance(entry, Admission):
            return entry
        if pass_.exhausted():
            return None
    return None
