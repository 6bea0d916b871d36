"""Benchmark: replay (decode + evolve) and audit over a synthetic log of ~1M events.

The log is made by a small simulation driven by the real admission planner: jobs of many
users arrive, are admitted strict-FIFO within a GPU quota, run (2-3 Fireworks observations)
and succeed, so the audit must come back clean. Run: `python -m bench.replay [events]`."""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from events.domain.codec import AnyEvent, encode, event_type, schema_version
from events.domain.directory_events import UserAdded, user_stream
from events.domain.job_events import (
    AdmissionReason,
    AdmissionStarted,
    Admitted,
    FireworksStateObserved,
    JobSubmitted,
    Succeeded,
)
from events.domain.scheduling import Job, Limits, Policy, Running, plan
from events.store.log import RecordedEvent
from projections.audit import audit
from projections.replay import replay

TARGET = 300_000
QUOTA = 64
PAYLOAD = {"baseModel": "accounts/fireworks/models/llama-v3p1-8b-instruct", "dataset": "d-1"}


class _Log:
    def __init__(self) -> None:
        self.rows: list[RecordedEvent] = []
        self.versions: dict[str, int] = {}

    def append(self, stream: str, event: AnyEvent) -> None:
        type_ = event_type(event)
        version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        position = len(self.rows) + 1
        self.rows.append(
            RecordedEvent(
                position=position,
                transaction_id=position,
                stream_id=stream,
                stream_version=version,
                type=type_,
                schema_version=schema_version(type_),
                data=encode(event),
                metadata={},
                recorded_at=event.at,
            )
        )


def generate(n_events: int, *, users: int = 200, seed: int = 1) -> list[RecordedEvent]:
    """About `n_events` events of complete, audit-clean job lifecycles."""
    rng = random.Random(seed)
    uuids = random.Random(seed + 1)
    log = _Log()
    clock = datetime(2025, 1, 1, tzinfo=UTC)
    emails = [f"user{i}@example.com" for i in range(users)]
    ids = [str(uuid.UUID(int=uuids.getrandbits(128), version=4)) for _ in range(users)]
    for user_id, email in zip(ids, emails, strict=True):
        log.append(
            user_stream(email), UserAdded(at=clock, user_id=user_id, email=email, role="member")
        )
    queue: list[Job] = []
    running: dict[str, list[AnyEvent]] = {}  # job id -> its remaining events
    owner: dict[str, tuple[str, int]] = {}
    tick = 0
    while len(log.rows) < n_events:
        tick += 1
        clock += timedelta(seconds=1)
        for i in range(rng.randint(0, 2)):
            at = clock + timedelta(microseconds=i)
            job_id = str(uuid.UUID(int=uuids.getrandbits(128), version=4))
            u = rng.randrange(users)
            gpus = rng.choice((1, 2, 4, 8))
            submitted = JobSubmitted(
                at=at, job_id=job_id, user_id=ids[u], user_email=emails[u], kind="SFT",
                display_name=f"run {job_id[:8]}", gpu_count=gpus, fireworks_payload=PAYLOAD,
            )  # fmt: skip
            log.append(job_id, submitted)
            queue.append(Job(job_id, ids[u], at, gpus))
            owner[job_id] = (ids[u], gpus)
        used = sum(owner[job_id][1] for job_id in running)
        progress = [
            Running(job_id, owner[job_id][0], owner[job_id][1], clock, clock) for job_id in running
        ]
        decided = plan(
            queue, progress, {"h200": QUOTA - used}, Limits(), Policy(), clock, explain=False
        )
        admitted = {a.job.job_id for a in decided.admit}
        queue = [job for job in queue if job.job_id not in admitted]
        for a in decided.admit:
            at = clock + timedelta(milliseconds=1)
            reason = AdmissionReason(
                policy="strict-fifo", quota=QUOTA, in_use=used,
                available=a.available_before, queue_position=a.queue_position,
            )  # fmt: skip
            name = f"accounts/bench/supervisedFineTuningJobs/ftq-{a.job.job_id}"
            log.append(a.job.job_id, AdmissionStarted(
                at=at, fireworks_job_id=f"ftq-{a.job.job_id}", fireworks_job_name=name,
                reason=reason,
            ))  # fmt: skip
            log.append(a.job.job_id, Admitted(at=at, fireworks_state="JOB_STATE_CREATING"))
            later: list[AnyEvent] = [
                FireworksStateObserved(at=at, fireworks_state="JOB_STATE_RUNNING", progress=p)
                for p in (10.0, 55.0, 90.0)[: rng.randint(2, 3)]
            ]
            later.append(Succeeded(at=at, fireworks_state="JOB_STATE_COMPLETED"))
            running[a.job.job_id] = later
        for job_id in list(running):
            if rng.random() < 0.5:
                event = running[job_id].pop(0)
                log.append(job_id, type(event)(**{**_fields(event), "at": clock}))
                if not running[job_id]:
                    del running[job_id]
    return log.rows


def _fields(event: AnyEvent) -> dict[str, Any]:
    return {f: getattr(event, f) for f in event.__struct_fields__}


def rate_row(
    name: str, events: int, seconds: float, target: int | None = TARGET
) -> dict[str, object]:
    """A result row: events/s, against a target rate when there is one."""
    rate = events / seconds if seconds > 0 else float("inf")
    row: dict[str, object] = {
        "name": name,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(rate),
    }
    if target is not None:
        row["target"] = target
        row["ok"] = rate >= target
    return row


def measure(n_events: int = 1_000_000) -> list[dict[str, object]]:
    rows = generate(n_events)
    start = time.perf_counter()
    model = replay(rows)
    replay_s = time.perf_counter() - start
    start = time.perf_counter()
    violations = audit(rows, default_cap=1)
    audit_s = time.perf_counter() - start
    if violations or model.events != len(rows):
        raise AssertionError(f"bench history not clean: {violations[:3]}")
    return [
        rate_row("replay decode+evolve", len(rows), replay_s),
        rate_row("audit", len(rows), audit_s, target=None),  # the issues set none
    ]


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py`; `ctx.replay_events` overrides the log size."""
    n_events = int(getattr(ctx, "replay_events", 1_000_000))
    return await asyncio.to_thread(measure, n_events)


if __name__ == "__main__":
    for result in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000):
        print(result)
