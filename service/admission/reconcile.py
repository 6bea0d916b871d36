"""Reconcile ftq's PROGRESS jobs with Fireworks: resolve open admissions, carry out requested
cancels, record state changes seen on Fireworks, and cancel Fireworks jobs that outlived
their ftq job (orphan sweep)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Final

import asyncpg
import structlog

from events.domain.fireworks_states import is_known, is_live
from events.domain.job import JOB, JobState
from events.domain.job_commands import FireworksJobGone
from projections.recorder import load
from service.admission.admit import (
    AdmissionContext,
    Outcome,
    observed,
    record,
    resolve_open,
    settle,
    settle_outcome,
)
from service.fireworks import FireworksError, Kind, NotFound
from service.sql import QUERIES

log = structlog.get_logger(__name__)

CONCURRENCY: Final = 16


async def reconcile(ctx: AdmissionContext, *, full: bool = True) -> Counter[str]:
    """One pass; `full=False` only resolves open admissions and requested cancels (cheap, for
    NOTIFY-driven ticks). Returns outcome counts, plus "reconciled" = jobs looked at."""
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(QUERIES["reconcile_progress_jobs"], full)
    counts: Counter[str] = Counter()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(row: asyncpg.Record) -> None:
        async with gate:
            job_id, is_open, cancel_requested, kind = row[0], row[1], row[2], row[3]
            if is_open:
                outcome: Outcome | str = await resolve_open(ctx, job_id)
            elif cancel_requested:
                outcome = await _cancel(ctx, job_id)
            else:
                outcome = await _observe(ctx, job_id, kind, _known(row))
            counts[outcome] += 1
            counts["reconciled"] += 1

    await asyncio.gather(*(one(r) for r in rows))
    if full:
        await sweep_orphans(ctx)
    return counts


async def _cancel(ctx: AdmissionContext, job_id: str) -> Outcome:
    async with ctx.pool.acquire() as conn:
        state = await load(conn, JOB, job_id)
    return await settle(ctx, state) if not state.terminal else settle_outcome(state)


def _known(row: asyncpg.Record) -> JobState:
    """What the projection knows of a running job on Fireworks, as the state `decide` reads
    for an observation (no admission open, no cancel asked: those rows go elsewhere)."""
    return JobState(
        job_id=row[0],
        status="PROGRESS",
        fireworks_state=row[4],
        progress=row[5],
        accelerator_seconds=row[6],
        estimated_cost=row[7],
    )


async def _observe(ctx: AdmissionContext, job_id: str, kind: Kind, known: JobState) -> str:
    try:
        job = await ctx.client.get_job(kind, job_id)
    except NotFound:
        log.warning("reconcile.gone_on_fireworks", job_id=job_id)
        return settle_outcome_or_skip(await record(ctx, job_id, FireworksJobGone(at=ctx.clock())))
    except FireworksError as exc:
        log.warning("reconcile.unreachable", job_id=job_id, status=exc.status)
        return "unreachable"
    state = job.state or "JOB_STATE_UNSPECIFIED"
    if not is_known(state):
        log.warning("reconcile.unknown_fireworks_state", job_id=job_id, fireworks_state=state)
    if state == "JOB_STATE_PAUSED" and known.fireworks_state != state:
        log.error("reconcile.paused_on_fireworks", job_id=job_id, alert=True)
    command = observed(ctx, job)
    if not JOB.changes(command, known):
        return "unchanged"
    return settle_outcome_or_skip(await record(ctx, job_id, command))


def settle_outcome_or_skip(state: JobState | None) -> str:
    return "skipped" if state is None else settle_outcome(state)


async def sweep_orphans(ctx: AdmissionContext) -> int:
    """Cancel every Fireworks job still live whose ftq job is finished; returns how many."""
    try:
        jobs = await ctx.client.list_all_jobs()
    except FireworksError as exc:
        log.warning("reconcile.orphan_sweep_unreachable", status=exc.status)
        return 0
    live = {}
    for kind, job in jobs:
        job_id = job.job_id
        state = job.state or "JOB_STATE_UNSPECIFIED"
        if job_id is None or not is_live(state):
            continue
        try:
            live[str(uuid.UUID(job_id))] = kind
        except ValueError:
            continue  # not an ftq id: started outside ftq
    if not live:
        return 0
    async with ctx.pool.acquire() as conn:
        finished = [r[0] for r in await conn.fetch(QUERIES["reconcile_terminal_among"], list(live))]
    for job_id in finished:
        log.warning("reconcile.orphan_cancelled", job_id=job_id)
        try:
            await ctx.client.cancel_job(live[job_id], job_id)
        except FireworksError as exc:
            log.warning("reconcile.orphan_cancel_failed", job_id=job_id, status=exc.status)
    return len(finished)
