"""Request and response bodies of the HTTP API (separate from the event structs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from events.domain.directory_events import Role
from events.domain.job_events import JobStatus, Kind
from events.domain.job_limits import MAX_RUNTIME_MINUTES

GpuType = Literal["h200", "b200", "h100"]
POLICY_HEADER = "X-FTQ-Policy"  # GET /queue: the admission policy in force

GpuCount = Annotated[int, Meta(ge=1, le=1024, description="GPUs the job needs (1..1024)")]
DisplayName = Annotated[str, Meta(max_length=200)]
After = Annotated[
    list[Annotated[str, Meta(max_length=64)]],
    Meta(
        max_length=100,
        description="ids of your own jobs this one waits for: it is admitted only once every "
        "one of them is SUCCESS, and FAILs at once if one ends FAIL or CANCELLED",
    ),
]
Priority = Annotated[int, Meta(ge=0, le=100, description="0..100, default 50; higher first")]
MaxRuntimeMinutes = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_RUNTIME_MINUTES,
        description="Runtime limit on Fireworks in minutes from admission "
        f"(1..{MAX_RUNTIME_MINUTES}); past it ftq cancels the job. Unset: "
        "FTQ_MAX_RUNTIME_HOURS, if the operator set it.",
    ),
]


class JobSubmission(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /jobs. Unknown top-level fields are refused (typos must not pass)."""

    kind: Kind
    fireworks_payload: dict[str, Any]
    gpu_count: GpuCount = 4
    display_name: DisplayName | None = None
    # Whose quota the job counts against (`training-<gpu_type>-count`); unset:
    # FTQ_DEFAULT_GPU_TYPE. The old service's newer clients send it.
    gpu_type: GpuType | None = None
    after: After | None = None
    # Higher goes first (with aging); a member may only lower it below their maximum (50
    # unless an admin raised it with `ftq users max-priority`), an admin may set any.
    priority: Priority | None = None
    max_runtime_minutes: MaxRuntimeMinutes | None = None


class JobView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A job as the API shows it; `queue_position`/`pending_reason` only while QUEUED."""

    id: str
    kind: Kind
    state: JobStatus
    display_name: str | None
    gpu_count: int
    gpu_type: GpuType
    priority: int
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
    gpu_type: GpuType = "h200"
    priority: int = 50
    eta: datetime | None = None  # estimated admission (service.eta): null until known


class CapacityType(msgspec.Struct, frozen=True, kw_only=True):
    """The headroom of one GPU type (its `training-<type>-count` quota)."""

    quota: int
    in_use: int
    available: int


class CapacityView(msgspec.Struct, frozen=True, kw_only=True):
    """Totals over every GPU type, and each type in `types`."""

    quota: int
    in_use: int
    available: int
    source: Literal["fireworks-quotas", "config"]
    observed_at: datetime
    note: str | None = None
    types: dict[str, CapacityType] = msgspec.field(default_factory=dict)


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
    cap_big: int | None = None
    no_cap: list[str] = msgspec.field(default_factory=list)  # classes without a hard cap
    share: float | None = None
    max_priority: int | None = None
    usage: UsageTotals | None = None  # filled in by GET /admin/users


class NewKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    label: Annotated[str, Meta(max_length=200)] | None = None


class IssuedKeyView(msgspec.Struct, frozen=True, kw_only=True):
    """The plaintext key appears here, once, and nowhere else."""

    id: str
    key: str


class CapUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A per-user PROGRESS cap of one size class (`small`, the one cap when classes are off;
    or `big`); null returns the user to the default, "none" means no hard cap."""

    cap: Annotated[int, Meta(ge=0, le=1024)] | Literal["none"] | None
    size_class: Literal["small", "big"] = msgspec.field(default="small", name="class")


class ShareUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A user's fair-share weight (their usage counts divided by it); null: the default, 1."""

    share: Annotated[float, Meta(gt=0, le=1_000_000)] | None


class MaxPriorityUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The highest priority the user may submit with; null: the default, 50."""

    max_priority: Annotated[int, Meta(ge=0, le=100)] | None


class SchedulerView(msgspec.Struct, frozen=True, kw_only=True):
    leader: bool
    paused: bool
    running_here: bool
    last_tick: dict[str, Any] | None
    pause_reason: str | None = None  # the reason given with the pause, while paused
    changed_by: str | None = None  # who paused or resumed last, and when
    changed_at: datetime | None = None
    # The admission policy and limits this process admits with, and the ones last recorded
    # in the log (scheduler.policy_in_force) by a leader; the headroom per GPU type the loop
    # last read.
    policy: str = "strict-fifo"
    policy_settings: dict[str, Any] = msgspec.field(default_factory=dict)
    recorded_policy: str | None = None
    recorded_policy_settings: dict[str, Any] | None = None
    headroom: dict[str, int] | None = None


class PauseRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(max_length=500)] | None = None
