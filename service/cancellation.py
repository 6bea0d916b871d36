"""Cancelling a job: at once while QUEUED; for a job on Fireworks, record the request, cancel
it there, then confirm. Whatever cannot be finished now is finished by the admission loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec
import structlog

from events.domain.fireworks_states import is_final, is_leaving, is_live
from events.domain.job import JOB, JobState
from events.domain.job_commands import ConfirmCancelled, ObserveFireworks, RequestCancel
from events.store.waker import Waker
from service.clock import Clock, utcnow
from service.commands import run_command
from service.fireworks import FireworksClient, FireworksError, Kind, NotFound, Rejected

log = structlog.get_logger(__name__)


class CancelOutcome(msgspec.Struct, frozen=True):
    """`carried_out` False: the request is recorded and the loop will finish it (HTTP 202)."""

    state: JobState
    carried_out: bool


async def cancel_job(
    pool: asyncpg.Pool,
    client: FireworksClient | None,
    job_id: str,
    by: str,
    metadata: dict[str, Any],
    *,
    clock: Clock = utcnow,
    waker: Waker | None = None,
) -> CancelOutcome:
    """Cancel `job_id` on behalf of `by`. Raises `InvalidState` for a terminal job and
    `UnknownStream` for an unknown one (nothing recorded in either case)."""
    request = RequestCancel(at=clock(), by=by)
    state, _ = await run_command(pool, JOB, job_id, request, metadata, waker=waker)
    if state.terminal:
        return CancelOutcome(state, carried_out=True)
    if state.admission_open or client is None:
        return CancelOutcome(state, carried_out=False)
    finished = await carry_out_cancel(pool, client, state, metadata, clock=clock, waker=waker)
    if finished is None:
        return CancelOutcome(state, carried_out=False)
    return CancelOutcome(finished, carried_out=finished.terminal)


async def carry_out_cancel(
    pool: asyncpg.Pool,
    client: FireworksClient,
    state: JobState,
    metadata: Mapping[str, Any],
    *,
    clock: Clock = utcnow,
    waker: Waker | None = None,
) -> JobState | None:
    """Cancel the job's Fireworks job (the client falls back to DELETE) and record it.

    Returns the new state, or None when Fireworks could not be told (left for the next tick).
    A refused cancel (job already finished or cancelling there) is settled by a GET."""
    kind, fireworks_id = state.kind, state.fireworks_job_id or state.job_id
    fireworks_state: str | None = None
    try:
        await client.cancel_job(kind, fireworks_id)
    except NotFound:
        fireworks_state = None  # nothing left on Fireworks to cancel
    except Rejected as exc:
        try:
            job = await client.get_job(kind, fireworks_id)
        except NotFound:
            job = None
        except FireworksError:
            return None
        if job is not None and job.state is not None:
            if is_final(job.state):
                observe = ObserveFireworks(
                    at=clock(),
                    fireworks_state=job.state,
                    progress=job.percent,
                    message=job.status_message,
                )
                after, _ = await run_command(
                    pool, JOB, state.job_id, observe, metadata, waker=waker
                )
                return after
            if not is_leaving(job.state):
                log.error(
                    "cancel.refused_by_fireworks",
                    job_id=state.job_id,
                    status=exc.status,
                    error=exc.message,
                    fireworks_state=job.state,
                )
                return None
            fireworks_state = job.state
    except FireworksError as exc:
        log.warning("cancel.fireworks_unreachable", job_id=state.job_id, status=exc.status)
        return None
    else:  # accepted: record what Fireworks shows now, so the job never looks running
        fireworks_state = await _state_after_cancel(client, kind, fireworks_id)
    confirm = ConfirmCancelled(at=clock(), fireworks_state=fireworks_state)
    after, _ = await run_command(pool, JOB, state.job_id, confirm, metadata, waker=waker)
    log.info("cancel.carried_out", job_id=state.job_id, by=state.cancel_requested_by)
    return after


async def _state_after_cancel(client: FireworksClient, kind: Kind, fireworks_id: str) -> str | None:
    """The Fireworks state right after an accepted cancel (CANCELLING or CANCELLED), or None
    when it cannot be read (the domain then clears the live state it had)."""
    try:
        job = await client.get_job(kind, fireworks_id)
    except FireworksError:
        return None
    seen = job.state
    if seen is None or is_live(seen):
        return None  # not yet showing the cancel: nothing worth recording
    return seen
