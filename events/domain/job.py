"""The job aggregate: `evolve` folds events into state, `decide` turns a command into events.

State machine (DESIGN.md invariant 6): QUEUED → PROGRESS → SUCCESS | FAIL | CANCELLED and
QUEUED → CANCELLED. A quota refusal sends an open admission back to QUEUED; nothing leaves a
terminal state. Pure: no IO, no clock, no logging."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Final

import msgspec

from events.domain.decider import Decider, tags
from events.domain.fireworks_states import outcome_of
from events.domain.job_commands import (
    ConfirmAdmission,
    ConfirmCancelled,
    DetectStuck,
    EnforceRuntimeLimit,
    FailForDependency,
    FireworksJobGone,
    JobCommand,
    ObserveFireworks,
    RejectAdmission,
    RequestCancel,
    ReturnToQueue,
    ShredSecrets,
    StartAdmission,
    SubmitJob,
)
from events.domain.job_events import (
    TERMINAL,
    AdmissionReason,
    AdmissionStarted,
    Admitted,
    Cancelled,
    CancelRequested,
    DependencyFailed,
    Failed,
    FireworksStateObserved,
    JobEvent,
    JobStatus,
    JobSubmitted,
    Kind,
    RejectedByFireworks,
    ReturnedToQueue,
    SecretsShredded,
    StuckCleared,
    StuckDetected,
    Succeeded,
)
from events.domain.job_limits import limit_cancel, stuck_event
from events.domain.rejections import AlreadyExists, InvalidState, UnknownStream
from events.domain.scheduling.dependencies import dependency_failed_message
from events.domain.scheduling.model import GPU_TYPES, MAX_PRIORITY

GONE_OUTSIDE_FTQ = "deleted outside ftq"


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything known about one job; `status is None` means the job does not exist."""

    version: int = 0
    job_id: str = ""
    status: JobStatus | None = None
    user_id: str = ""
    user_email: str = ""
    kind: Kind = "SFT"
    display_name: str | None = None
    gpu_count: int = 0
    gpu_type: str = "h200"
    priority: int = 50
    fireworks_payload: dict[str, Any] = msgspec.field(default_factory=dict)
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    fireworks_job_id: str | None = None
    fireworks_job_name: str | None = None
    fireworks_state: str | None = None
    progress: float | None = None
    admission_open: bool = False
    admissions: int = 0
    admission_reason: AdmissionReason | None = None
    cancel_requested_by: str | None = None
    # When Fireworks confirmed the job exists (GPU accounting starts here), and the last
    # accounting figures Fireworks reported for it (None: never reported).
    admitted_at: datetime | None = None
    accelerator_seconds: float | None = None
    estimated_cost: float | None = None
    # When the job's data key was deleted (its sealed secrets are gone for good).
    secrets_shredded_at: datetime | None = None
    after: tuple[str, ...] = ()  # jobs it waits for (all must be SUCCESS before admission)
    # Operations (events.domain.job_limits): the job's own runtime limit, the job it was
    # requeued from, why ftq asked for the cancel (a limit), when ftq first saw the current
    # Fireworks state and last saw the state or progress change, and the stuck flag.
    max_runtime_minutes: int | None = None
    requeued_from: str | None = None
    cancel_reason: str | None = None
    fireworks_state_since: datetime | None = None
    last_change_at: datetime | None = None
    stuck_reason: str | None = None
    stuck_since: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def initial_state() -> JobState:
    return JobState()


def evolve(state: JobState, event: JobEvent) -> JobState:
    """Apply one event. Total: every event type has an arm."""
    version = state.version + 1
    match event:
        case JobSubmitted():
            return JobState(
                version=version,
                job_id=event.job_id,
                status="QUEUED",
                user_id=event.user_id,
                user_email=event.user_email,
                kind=event.kind,
                display_name=event.display_name,
                gpu_count=event.gpu_count,
                gpu_type=event.gpu_type,
                priority=event.priority,
                fireworks_payload=event.fireworks_payload,
                idempotency_key=event.idempotency_key,
                request_fingerprint=event.request_fingerprint,
                created_at=event.at,
                after=event.after,
                max_runtime_minutes=event.max_runtime_minutes,
                requeued_from=event.requeued_from,
            )
        case AdmissionStarted():
            return msgspec.structs.replace(
                state,
                version=version,
                status="PROGRESS",
                started_at=event.at,
                fireworks_job_id=event.fireworks_job_id,
                fireworks_job_name=event.fireworks_job_name,
                admission_open=True,
                admissions=state.admissions + 1,
                admission_reason=event.reason,
            )
        case Admitted():
            fireworks_state = event.fireworks_state or state.fireworks_state
            return msgspec.structs.replace(
                state,
                version=version,
                admission_open=False,
                fireworks_state=fireworks_state,
                admitted_at=state.admitted_at or event.at,
                fireworks_state_since=_since(state, fireworks_state, event.at),
                last_change_at=state.last_change_at or event.at,
            )
        case ReturnedToQueue():
            return msgspec.structs.replace(
                state,
                version=version,
                status="QUEUED",
                started_at=None,
                admitted_at=None,
                admission_open=False,
                error=event.message,
                fireworks_state_since=None,
                last_change_at=None,
            )
        case FireworksStateObserved():
            progress = event.progress if event.progress is not None else state.progress
            moved = event.fireworks_state != state.fireworks_state or progress != state.progress
            return msgspec.structs.replace(
                state,
                version=version,
                fireworks_state=event.fireworks_state,
                progress=progress,
                fireworks_state_since=_since(state, event.fireworks_state, event.at),
                last_change_at=event.at if moved else state.last_change_at,
                accelerator_seconds=_latest(event.accelerator_seconds, state.accelerator_seconds),
                estimated_cost=_latest(event.estimated_cost, state.estimated_cost),
            )
        case CancelRequested():
            return msgspec.structs.replace(
                state, version=version, cancel_requested_by=event.by, cancel_reason=event.reason
            )
        case StuckDetected():
            return msgspec.structs.replace(
                state, version=version, stuck_reason=event.reason, stuck_since=event.at
            )
        case StuckCleared():
            return msgspec.structs.replace(
                state, version=version, stuck_reason=None, stuck_since=None
            )
        case RejectedByFireworks():
            return _finish(state, version, "FAIL", event.at, error=event.message)
        case Cancelled():
            return _finish(
                state, version, "CANCELLED", event.at, event.fireworks_state, event.error
            )
        case Succeeded():
            return _finish(state, version, "SUCCESS", event.at, event.fireworks_state)
        case Failed():
            return _finish(state, version, "FAIL", event.at, event.fireworks_state, event.message)
        case SecretsShredded():
            return msgspec.structs.replace(state, version=version, secrets_shredded_at=event.at)
        case DependencyFailed():
            return _finish(state, version, "FAIL", event.at, error=event.message)


def _since(state: JobState, fireworks_state: str | None, at: datetime) -> datetime | None:
    """When ftq first saw `fireworks_state` (the job's current one, or a new one now)."""
    if fireworks_state is None:
        return state.fireworks_state_since or at
    if fireworks_state != state.fireworks_state or state.fireworks_state_since is None:
        return at
    return state.fireworks_state_since


def _latest(reported: float | None, known: float | None) -> float | None:
    return reported if reported is not None else known


def _finish(
    state: JobState,
    version: int,
    status: JobStatus,
    at: datetime,
    fireworks_state: str | None = None,
    error: str | None = None,
) -> JobState:
    progress = 100.0 if status == "SUCCESS" else state.progress
    if fireworks_state is None and not _still_true_at_the_end(state.fireworks_state):
        fireworks_state = None  # a finished job never shows a live-looking Fireworks state
    else:
        fireworks_state = fireworks_state or state.fireworks_state
    return msgspec.structs.replace(
        state,
        version=version,
        status=status,
        completed_at=at,
        admission_open=False,
        fireworks_state=fireworks_state,
        progress=progress,
        error=error if error is not None else (None if status != "FAIL" else state.error),
        stuck_reason=None,  # a finished job is not stuck: the episode ends with it
        stuck_since=None,
    )


def _still_true_at_the_end(fireworks_state: str | None) -> bool:
    """Whether a Fireworks state last seen while the job ran may stay on it once it is
    finished without a newer one: a final state, or one on its way out (CANCELLING), yes; a
    live one (PENDING, RUNNING, ...), no."""
    if fireworks_state is None:
        return False
    return outcome_of(fireworks_state) != "running" or fireworks_state == "JOB_STATE_CANCELLING"


def fold(events: list[JobEvent], state: JobState | None = None) -> JobState:
    return JOB.fold(events, state)


def decide(command: JobCommand, state: JobState) -> list[JobEvent]:
    """The rules. Raises `CommandRejected` for a command the state does not allow."""
    if isinstance(command, SubmitJob):
        return _submit(command, state)
    if state.status is None:
        raise UnknownStream("no such job")
    if isinstance(command, ShredSecrets):
        return _shred(command, state)
    if state.terminal:
        late = ObserveFireworks | FireworksJobGone | ConfirmCancelled
        if isinstance(command, late | EnforceRuntimeLimit | DetectStuck):
            return []  # late news about a finished job changes nothing, nor do checks
        raise InvalidState(f"job is {state.status}, a terminal state")
    match command:
        case StartAdmission():
            _require(state.status == "QUEUED", state, "admit")
            _require(state.cancel_requested_by is None, state, "admit a cancelled job")
            return [
                AdmissionStarted(
                    at=command.at,
                    fireworks_job_id=command.fireworks_job_id,
                    fireworks_job_name=command.fireworks_job_name,
                    reason=command.reason,
                )
            ]
        case ConfirmAdmission():
            if not state.admission_open:
                return []
            return [Admitted(at=command.at, fireworks_state=command.fireworks_state)]
        case ReturnToQueue():
            _require(state.admission_open, state, "return to the queue")
            if state.cancel_requested_by is not None:
                return [_cancelled(state, command.at, None)]
            return [ReturnedToQueue(at=command.at, message=command.message)]
        case RejectAdmission():
            _require(state.admission_open, state, "reject")
            return [
                RejectedByFireworks(at=command.at, message=command.message, status=command.status)
            ]
        case ObserveFireworks():
            return _observe(command, state)
        case FireworksJobGone():
            _require(state.status == "PROGRESS" and not state.admission_open, state, "lose")
            reason = GONE_OUTSIDE_FTQ if state.cancel_requested_by is None else None
            return [_cancelled(state, command.at, None, reason)]
        case RequestCancel():
            if state.status == "QUEUED":
                return [
                    Cancelled(at=command.at, reason=f"cancelled by {command.by}", by=command.by)
                ]
            if state.cancel_requested_by is not None:
                return []
            return [CancelRequested(at=command.at, by=command.by)]
        case ConfirmCancelled():
            _require(state.cancel_requested_by is not None, state, "confirm a cancel never asked")
            return [_cancelled(state, command.at, command.fireworks_state)]
        case FailForDependency():
            _require(state.status == "QUEUED", state, "fail for a dependency")
            if command.dependency_id not in state.after:
                raise InvalidState(f"job does not wait for job {command.dependency_id}")
            message = dependency_failed_message(command.dependency_id, command.dependency_status)
            return [
                DependencyFailed(
                    at=command.at,
                    dependency_id=command.dependency_id,
                    dependency_status=command.dependency_status,
                    message=message,
                )
            ]
        case EnforceRuntimeLimit():
            # nothing before the limit, nothing twice (a cancel already asked for, by anyone,
            # is the one that ends the job)
            asked = _running(state) and limit_cancel(
                state.max_runtime_minutes, command.default_minutes, state.admitted_at, command.at
            )
            return [asked] if asked else []
        case DetectStuck():  # once per episode: until Fireworks shows a change
            flag = (
                _running(state)
                and state.stuck_reason is None
                and stuck_event(
                    state.fireworks_state,
                    state.fireworks_state_since,
                    state.last_change_at,
                    command.at,
                    stuck_minutes=command.stuck_minutes,
                    stalled_minutes=command.stalled_minutes,
                )
            )
            return [flag] if flag else []


def _shred(command: ShredSecrets, state: JobState) -> list[JobEvent]:
    if not state.terminal:
        raise InvalidState(f"job is {state.status}: secrets are shredded once it has ended")
    if state.secrets_shredded_at is not None:
        return []  # shredded already: nothing more to delete
    return [SecretsShredded(at=command.at, by=command.by, reason=command.reason)]


def _submit(command: SubmitJob, state: JobState) -> list[JobEvent]:
    if state.status is not None:
        raise AlreadyExists(f"job {command.job_id} already exists")
    if command.gpu_count < 1:
        raise InvalidState("gpu_count must be at least 1")
    if command.job_id in command.after:
        raise InvalidState("a job cannot wait for itself")
    if command.gpu_type not in GPU_TYPES:
        raise InvalidState(f"gpu_type must be one of {', '.join(GPU_TYPES)}")
    if not 0 <= command.priority <= MAX_PRIORITY:
        raise InvalidState(f"priority must be between 0 and {MAX_PRIORITY}")
    return [
        JobSubmitted(
            at=command.at,
            job_id=command.job_id,
            user_id=command.user_id,
            user_email=command.user_email,
            kind=command.kind,
            display_name=command.display_name,
            gpu_count=command.gpu_count,
            fireworks_payload=command.fireworks_payload,
            idempotency_key=command.idempotency_key,
            request_fingerprint=command.request_fingerprint,
            after=command.after,
            gpu_type=command.gpu_type,
            priority=command.priority,
            max_runtime_minutes=command.max_runtime_minutes,
            requeued_from=command.requeued_from,
        )
    ]


def _observe(command: ObserveFireworks, state: JobState) -> list[JobEvent]:
    _require(state.status == "PROGRESS", state, "observe on Fireworks")
    out: list[JobEvent] = []
    if state.admission_open:
        out.append(Admitted(at=command.at, fireworks_state=command.fireworks_state))
    changed = (
        command.fireworks_state != state.fireworks_state
        or (command.progress is not None and command.progress != state.progress)
        or _news(command.accelerator_seconds, state.accelerator_seconds)
        or _news(command.estimated_cost, state.estimated_cost)
    )
    if changed:
        out.append(
            FireworksStateObserved(
                at=command.at,
                fireworks_state=command.fireworks_state,
                progress=command.progress,
                accelerator_seconds=command.accelerator_seconds,
                estimated_cost=command.estimated_cost,
            )
        )
    moved = command.fireworks_state != state.fireworks_state or (
        command.progress is not None and command.progress != state.progress
    )
    if moved and state.stuck_reason is not None:
        out.append(
            StuckCleared(
                at=command.at, fireworks_state=command.fireworks_state, progress=command.progress
            )
        )
    match outcome_of(command.fireworks_state):
        case "success":
            out.append(Succeeded(at=command.at, fireworks_state=command.fireworks_state))
        case "fail":
            message = command.message or f"Fireworks reported {command.fireworks_state}"
            out.append(
                Failed(at=command.at, message=message, fireworks_state=command.fireworks_state)
            )
        case "cancelled":
            out.append(_cancelled(state, command.at, command.fireworks_state))
        case "going_away" if state.cancel_requested_by is not None:
            out.append(_cancelled(state, command.at, command.fireworks_state))
        case _:
            pass
    return out


def _running(state: JobState) -> bool:
    """On Fireworks and confirmed there, with no cancel under way."""
    return (
        state.status == "PROGRESS"
        and not state.admission_open
        and state.admitted_at is not None
        and state.cancel_requested_by is None
    )


def _news(reported: float | None, known: float | None) -> bool:
    return reported is not None and reported != known


def _cancelled(
    state: JobState, at: datetime, fireworks_state: str | None, reason: str | None = None
) -> Cancelled:
    by = state.cancel_requested_by
    if reason is None:
        reason = state.cancel_reason  # ftq's own (a runtime limit): also the job's error
        if reason is not None:
            return Cancelled(
                at=at, reason=reason, by=by, fireworks_state=fireworks_state, error=reason
            )
        reason = f"cancelled by {by}" if by is not None else "cancelled on Fireworks"
    return Cancelled(at=at, reason=reason, by=by, fireworks_state=fireworks_state)


def _require(condition: bool, state: JobState, action: str) -> None:
    if not condition:
        detail = " (admission open)" if state.admission_open else ""
        raise InvalidState(f"cannot {action}: job is {state.status}{detail}")


def frees_a_slot(before: JobState, after: JobState, events: Sequence[JobEvent]) -> bool:
    """A job leaving PROGRESS frees its user's slot and its GPUs: it takes the admission gate."""
    return before.status == "PROGRESS" and after.status != "PROGRESS"


JOB: Final[Decider[JobCommand, JobState, JobEvent]] = Decider(
    "job", JobState(), decide, evolve, tags(JobEvent),
    key=attrgetter("job_id"), stream_id=str,  # a job's stream id is its uuid
    is_terminal=attrgetter("terminal"), frees_a_slot=frees_a_slot,
)  # fmt: skip
