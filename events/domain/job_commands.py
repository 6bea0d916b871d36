"""Commands against a job stream. The clock (`at`) and new ids arrive inside them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from events.domain.job_events import AdmissionReason, Kind


class Command(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime


class SubmitJob(Command, frozen=True):
    job_id: str
    user_id: str
    user_email: str
    kind: Kind
    display_name: str | None
    gpu_count: int
    fireworks_payload: dict[str, Any]
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    after: tuple[str, ...] = ()
    gpu_type: str = "h200"
    priority: int = 50
    max_runtime_minutes: int | None = None
    requeued_from: str | None = None


class StartAdmission(Command, frozen=True):
    fireworks_job_id: str
    fireworks_job_name: str
    reason: AdmissionReason


class ConfirmAdmission(Command, frozen=True):
    """Fireworks answered the create (or a GET found the job)."""

    fireworks_state: str | None = None


class ReturnToQueue(Command, frozen=True):
    """Fireworks refused the create for lack of quota."""

    message: str


class RejectAdmission(Command, frozen=True):
    """Fireworks refused the create with another 4xx."""

    message: str
    status: int | None = None


class ObserveFireworks(Command, frozen=True):
    """What a GET of the Fireworks job showed during reconciliation."""

    fireworks_state: str
    progress: float | None = None
    message: str | None = None
    accelerator_seconds: float | None = None
    estimated_cost: float | None = None


class FireworksJobGone(Command, frozen=True):
    """GET of the Fireworks job answered 404."""


class RequestCancel(Command, frozen=True):
    by: str


class ConfirmCancelled(Command, frozen=True):
    """Fireworks accepted the cancel, or there is no Fireworks job to cancel."""

    fireworks_state: str | None = None


class ShredSecrets(Command, frozen=True):
    """Delete the job's data key (allowed once the job is terminal)."""

    by: str
    reason: str = "requested"


class FailForDependency(Command, frozen=True):
    """A job this one waits for ended FAIL or CANCELLED (the leader saw it)."""

    dependency_id: str
    dependency_status: str


class EnforceRuntimeLimit(Command, frozen=True):
    """The leader checks a running job against its runtime limit (`default_minutes`: the
    FTQ_MAX_RUNTIME_HOURS default in minutes, None when unset)."""

    default_minutes: float | None = None


class DetectStuck(Command, frozen=True):
    """The leader checks whether a running job looks stuck (thresholds in minutes)."""

    stuck_minutes: float
    stalled_minutes: float


JobCommand = (
    SubmitJob
    | StartAdmission
    | ConfirmAdmission
    | ReturnToQueue
    | RejectAdmission
    | ObserveFireworks
    | FireworksJobGone
    | RequestCancel
    | ConfirmCancelled
    | ShredSecrets
    | FailForDependency
    | EnforceRuntimeLimit
    | DetectStuck
)
