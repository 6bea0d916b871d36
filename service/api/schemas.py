"""Request and response bodies of the HTTP API (separate from the event structs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Kind = Literal["SFT", "DPO", "RFT"]
JobStatus = Literal["QUEUED", "PROGRESS", "SUCCESS", "FAIL", "CANCELLED"]
Role = Literal["member", "admin"]
GpuType = Literal["h200", "b200", "h100"]

GpuCount = Annotated[int, Meta(ge=1, le=1024, description="GPUs the job needs (1..1024)")]
DisplayName = Annotated[str, Meta(max_length=200)]
MaxRuntimeMinutes = Annotated[
    int,
    Meta(
        ge=1,
        le=43200,
        description="Runtime limit on Fireworks in minutes from admission (1..43200); past it "
        "ftq cancels the job. Unset: FTQ_MAX_RUNTIME_HOURS, if the operator set it.",
    ),
]


class JobSubmission(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /jobs. Unknown top-level fields are refused (typos must not pass)."""

    kind: Kind
    fireworks_payload: dict[str, Any]
    gpu_count: GpuCount = 4
    display_name: DisplayName | None = None
    # Accepted (and ignored) for clients of the old service, which sent it; ftq reads the
    # GPU type from the account's quota.
    gpu_type: GpuType | None = None
    max_runtime_minutes: MaxRuntimeMinutes | None = None


class JobView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A job as the API shows it; `queue_position`/`pending_reason` only while QUEUED."""

    id: str
    kind: Kind
    state: JobStatus
    display_name: str | None
    gpu_count: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    error: str | None
    fireworks_job_name: str | None
    fireworks_state: str | None
    progress: float | None
    user: str
    fireworks_payload: dict[str, Any]
    cancel_requested: bool = False
    queue_position: int | None = None
    pending_reason: str | None = None
    eta: datetime | None = None  # QUEUED: estimated admission (service.eta), when known
    max_runtime_minutes: int | None = None
    # The FAIL/CANCELLED job this one was requeued from (POST /jobs/{id}/requeue).
    requeued_from: str | None = None
    # A PROGRESS job that looks stuck on Fireworks (FTQ_STUCK_MINUTES, FTQ_STALLED_MINUTES).
    stuck: bool = False
    stuck_reason: str | None = None


class CancelResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    state: JobStatus
    cancel_requested: bool = False


class QueueEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A QUEUED job in admission order; other users' entries carry no payload and no email."""

    id: str
    kind: Kind
    gpu_count: int
    display_name: str | None
    created_at: datetime
    queue_position: int
    pending_reason: str
    mine: bool
    user: str | None
    fireworks_payload: dict[str, Any] | None
    eta: datetime | None = None  # estimated admission (service.eta): null until known


class CapacityView(msgspec.Struct, frozen=True, kw_only=True):
    quota: int
    in_use: int
    available: int
    source: Literal["fireworks-quotas", "config"]
    observed_at: datetime
    note: str | None = None


class Health(msgspec.Struct, frozen=True):
    status: str


class NewUser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
    role: Role = "member"


class UsageTotals(msgspec.Struct, frozen=True, kw_only=True):
    """A user's GPU-hour accounting over all time (events.domain.usage)."""

    jobs: int = 0
    gpu_seconds: float = 0.0
    accelerator_seconds: float | None = None
    estimated_cost: float | None = None


class UserView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    email: str
    role: Role
    cap: int | None
    usage: UsageTotals | None = None  # filled in by GET /admin/users


class NewKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    label: Annotated[str, Meta(max_length=200)] | None = None


class IssuedKeyView(msgspec.Struct, frozen=True, kw_only=True):
    """The plaintext key appears here, once, and nowhere else."""

    id: str
    key: str


class CapUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A per-user PROGRESS cap; null returns the user to the global default."""

    cap: Annotated[int, Meta(ge=0, le=1024)] | None


class SchedulerView(msgspec.Struct, frozen=True, kw_only=True):
    leader: bool
    paused: bool
    running_here: bool
    last_tick: dict[str, Any] | None


class PauseRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(max_length=500)] | None = None
