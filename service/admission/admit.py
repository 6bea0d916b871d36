"""Exactly-once admission of one job: record AdmissionStarted, create the Fireworks job under
the ftq job's own uuid, record the outcome. An admission left open (crash, lost answer,
outage) is resolved by GETting that id: found → Admitted; not found → create again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg
import structlog

from events.domain.job import JOB, JobState
from events.domain.job_commands import (
    ConfirmAdmission,
    ConfirmCancelled,
    FireworksJobGone,
    JobCommand,
    ObserveFireworks,
    RejectAdmission,
    ReturnToQueue,
    StartAdmission,
)
from events.domain.job_events import AdmissionReason
from events.domain.rejections import CommandRejected
from events.store.errors import StreamVersionConflict
from events.store.log import Connection
from projections import recorder
from service.cancellation import carry_out_cancel
from service.commands import run_command
from service.fireworks import (
    COLLECTION,
    AlreadyExists,
    FireworksClient,
    FireworksError,
    FireworksJob,
    NotFound,
    QuotaExhausted,
    Rejected,
    Unauthenticated,
)
from service.secrets.admission import check_openable, fireworks_payload
from service.secrets.envelope import SecretsUnreadable
from service.secrets.vault import Vault

log = structlog.get_logger(__name__)

Checkpoint = Callable[[str, str], Awaitable[None]]
Outcome = Literal["admitted", "returned", "failed", "cancelled", "open", "skipped"]
STEPS = ("admission_started", "created", "outcome_recorded")


async def no_checkpoint(step: str, job_id: str) -> None:
    """The production checkpoint: does nothing. Tests inject one that raises or hangs."""


@dataclass(frozen=True)
class AdmissionContext:
    """What every step of admission and reconciliation needs."""

    pool: asyncpg.Pool
    client: FireworksClient
    clock: Callable[[], datetime]
    checkpoint: Checkpoint = no_checkpoint
    metadata: dict[str, Any] = field(default_factory=lambda: {"actor": "admission-loop"})
    vault: Vault | None = None  # opens sealed payload secrets (service.secrets)


def fireworks_job_name(account_id: str, kind: str, job_id: str) -> str:
    return f"accounts/{account_id}/{COLLECTION[kind]}/{job_id}"  # type: ignore[index]


def observed(ctx: AdmissionContext, job: FireworksJob) -> JobCommand:
    """What a GET showed, as a command (Admitted is implied while an admission is open)."""
    if job.state is None:
        return ConfirmAdmission(at=ctx.clock())
    return ObserveFireworks(
        at=ctx.clock(),
        fireworks_state=job.state,
        progress=job.percent,
        message=job.status_message,
        accelerator_seconds=job.accelerator_total,
        estimated_cost=job.cost,
    )


async def record(ctx: AdmissionContext, job_id: str, command: JobCommand) -> JobState | None:
    """Record `command`; None (logged) when the job's state no longer allows it."""
    try:
        state, _ = await run_command(ctx.pool, JOB, job_id, command, ctx.metadata)
    except CommandRejected as exc:
        log.info(
            "admission.command_refused",
            job_id=job_id,
            command=type(command).__name__,
            reason=exc.message,
        )
        return None
    return state


async def start(
    ctx: AdmissionContext, conn: Connection, job_id: str, reason: AdmissionReason
) -> JobState | None:
    """Record AdmissionStarted for a planned job on `conn`, inside the caller's transaction
    (the loop's admission gate); None when the job changed since the plan was read (it was
    cancelled, say). The caller then checkpoints "admission_started" and calls `create`.
    Raises `SecretsBlocked` (nothing recorded) when the job's secrets cannot be opened."""
    state = await recorder.load(conn, JOB, job_id)
    await check_openable(ctx.vault, conn, state)
    name = fireworks_job_name(ctx.client.account_id, state.kind, job_id)
    command = StartAdmission(
        at=ctx.clock(), fireworks_job_id=job_id, fireworks_job_name=name, reason=reason
    )
    try:
        after, _ = await recorder.record(conn, JOB, state, JOB.decide(command, state), ctx.metadata)
    except (CommandRejected, StreamVersionConflict) as exc:
        log.info("admission.skipped", job_id=job_id, reason=str(exc))
        return None
    return after


async def create(ctx: AdmissionContext, state: JobState) -> Outcome:
    """Create the Fireworks job of an open admission and record what Fireworks answered."""
    job_id = state.job_id
    fireworks_id = state.fireworks_job_id or job_id
    command: JobCommand
    try:
        payload = await fireworks_payload(ctx.vault, ctx.pool, state)  # opened in memory only
    except SecretsUnreadable as exc:  # checked at start: only if the key went since
        log.error("admission.secrets_unreadable", job_id=job_id, why=str(exc))
        return "open"
    try:
        job = await ctx.client.create_job(
            state.kind,
            fireworks_id,
            payload,
            gpu_count=state.gpu_count,
            gpu_type=state.gpu_type,
        )
        command = ConfirmAdmission(at=ctx.clock(), fireworks_state=job.state)
    except AlreadyExists:  # our own earlier attempt got there: GET it
        return await resolve_found(ctx, state, after_conflict=True)
    except QuotaExhausted as exc:
        command = ReturnToQueue(at=ctx.clock(), message=exc.message)
    except Unauthenticated as exc:  # the account's fault, not the job's: never FAIL for it
        log.error("admission.unauthenticated", job_id=job_id, status=exc.status)
        return "open"
    except Rejected as exc:
        command = RejectAdmission(at=ctx.clock(), message=exc.message, status=exc.status)
    except FireworksError as exc:  # transient: the next tick resolves it by GET
        log.warning("admission.left_open", job_id=job_id, status=exc.status, error=exc.message)
        return "open"
    await ctx.checkpoint("created", job_id)
    after = await record(ctx, job_id, command)
    await ctx.checkpoint("outcome_recorded", job_id)
    if after is None and isinstance(command, ConfirmAdmission):
        await _cancel_orphan(ctx, state, "job finished in ftq while it was being created")
        return "cancelled"
    return await settle(ctx, after)


async def resolve_open(ctx: AdmissionContext, job_id: str) -> Outcome:
    """Resolve an admission left open: GET the id; found → Admitted; gone → create again."""
    async with ctx.pool.acquire() as conn:
        state = await recorder.load(conn, JOB, job_id)
    if not state.admission_open:
        return settle_outcome(state)
    return await resolve_found(ctx, state, after_conflict=False)


async def resolve_found(ctx: AdmissionContext, state: JobState, *, after_conflict: bool) -> Outcome:
    fireworks_id = state.fireworks_job_id or state.job_id
    try:
        job = await ctx.client.get_job(state.kind, fireworks_id)
    except NotFound:
        if state.cancel_requested_by is not None:  # nothing exists on Fireworks: done
            return await settle(
                ctx, await record(ctx, state.job_id, ConfirmCancelled(at=ctx.clock()))
            )
        if after_conflict:  # the id is taken but gone: created once, then deleted outside ftq
            await record(ctx, state.job_id, ConfirmAdmission(at=ctx.clock()))
            return await settle(
                ctx, await record(ctx, state.job_id, FireworksJobGone(at=ctx.clock()))
            )
        return await create(ctx, state)
    except FireworksError as exc:
        log.warning("admission.unresolved", job_id=state.job_id, status=exc.status)
        return "open"
    await ctx.checkpoint("created", state.job_id)
    after = await record(ctx, state.job_id, observed(ctx, job))
    await ctx.checkpoint("outcome_recorded", state.job_id)
    return await settle(ctx, after)


async def settle(ctx: AdmissionContext, state: JobState | None) -> Outcome:
    """Finish a cancel that raced the admission, then say what happened."""
    if state is None:
        return "skipped"
    if state.status == "PROGRESS" and not state.admission_open and state.cancel_requested_by:
        state = (
            await carry_out_cancel(ctx.pool, ctx.client, state, ctx.metadata, clock=ctx.clock)
            or state
        )
    return settle_outcome(state)


def settle_outcome(state: JobState) -> Outcome:
    match state.status:
        case "QUEUED":
            return "returned"
        case "FAIL":
            return "failed"
        case "CANCELLED":
            return "cancelled"
        case "PROGRESS" if state.admission_open:
            return "open"
        case _:
            return "admitted"


async def _cancel_orphan(ctx: AdmissionContext, state: JobState, why: str) -> None:
    fireworks_id = state.fireworks_job_id or state.job_id
    log.warning("admission.orphan_cancelled", job_id=state.job_id, why=why)
    try:
        await ctx.client.cancel_job(state.kind, fireworks_id)
    except FireworksError as exc:  # the orphan sweep retries
        log.warning("admission.orphan_cancel_failed", job_id=state.job_id, status=exc.status)
