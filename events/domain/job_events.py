"""Events of a job stream (stream id = the job's uuid). Schemas only grow: new fields get
defaults, types never change; a breaking change gets a new schema version and an upcaster
in `events.domain.codec`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

Kind = Literal["SFT", "DPO", "RFT"]
JobStatus = Literal["QUEUED", "PROGRESS", "SUCCESS", "FAIL", "CANCELLED"]
TERMINAL: frozenset[str] = frozenset({"SUCCESS", "FAIL", "CANCELLED"})


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event: `at` is when the fact happened (the clock enters via commands)."""

    at: datetime


class AdmissionReason(msgspec.Struct, frozen=True, kw_only=True):
    """Why the admission loop admitted a job: what it saw when it decided.

    `quota` is the GPU limit, `in_use` the GPUs taken including those admitted earlier in the
    same pass, `available` the headroom left for this job (= quota - in_use, floored at 0),
    `queue_position` its place in that pass's admission order."""

    policy: str
    quota: int
    in_use: int
    available: int
    queue_position: int
    headroom_source: str = "config"
    # The planner's evidence (events.domain.scheduling.Admission), for the audit: the GPU
    # type whose quota the figures above are of, the job's size class, the cap applied and
    # the user's jobs of that class in PROGRESS before it, the big-job reserve in force;
    # under reserve/fair-share the reservation of the first blocked job of the type (job,
    # time, spare GPUs), the spare before this admission, this job's runtime estimate, the
    # jobs holding a reservation; under fair-share the user's usage figure (decayed
    # GPU-seconds / share weight).
    gpu_type: str = "h200"
    size_class: str = "small"
    cap: int | None = None
    user_load: int = 0
    big_job_reserve: int = 0
    reservation_job: str | None = None
    reservation_at: datetime | None = None
    reservation_spare: int | None = None
    spare_before: int | None = None
    estimate_s: float | None = None
    usage: float | None = None
    holders: list[str] = msgspec.field(default_factory=list)


class JobSubmitted(Event, frozen=True, tag="job.submitted"):
    job_id: str
    user_id: str
    user_email: str
    kind: Kind
    display_name: str | None
    gpu_count: int
    fireworks_payload: dict[str, Any]
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    # Jobs this one waits for (`after`, Slurm's afterok): admitted only once all SUCCESS.
    after: tuple[str, ...] = ()
    # Whose quota the job counts against (`training-<gpu_type>-count`) and its priority
    # (0..100; higher goes first, with aging). Older events: h200, 50.
    gpu_type: str = "h200"
    priority: int = 50
    # The job's own runtime limit (None: the default, FTQ_MAX_RUNTIME_HOURS, if any).
    max_runtime_minutes: int | None = None
    # The FAIL or CANCELLED job this one was requeued from (POST /jobs/{id}/requeue).
    requeued_from: str | None = None


class AdmissionStarted(Event, frozen=True, tag="job.admission_started"):
    """From here on the job is PROGRESS: it counts against the cap and the GPU budget."""

    fireworks_job_id: str
    fireworks_job_name: str
    reason: AdmissionReason


class Admitted(Event, frozen=True, tag="job.admitted"):
    """Fireworks confirmed the job exists (created, or found by GET after a lost answer)."""

    fireworks_state: str | None = None


class ReturnedToQueue(Event, frozen=True, tag="job.returned_to_queue"):
    """Fireworks refused the create for lack of quota: QUEUED again, at the original place."""

    message: str


class RejectedByFireworks(Event, frozen=True, tag="job.rejected"):
    """Fireworks refused the payload (a 4xx other than quota): the job FAILs."""

    message: str
    status: int | None = None


class FireworksStateObserved(Event, frozen=True, tag="job.fireworks_state_observed"):
    """A change seen on Fireworks (state or progress); recorded only when it changes."""

    fireworks_state: str
    progress: float | None = None
    # What Fireworks reported of the job's own accounting, when it did: the sum of its
    # `acceleratorSeconds` map and its `estimatedCost` (units + nanos, in its currency).
    accelerator_seconds: float | None = None
    estimated_cost: float | None = None


class CancelRequested(Event, frozen=True, tag="job.cancel_requested"):
    """A user (or ftq itself, `by="ftq"`) asked to cancel a job in PROGRESS; carried out on
    Fireworks before Cancelled. When ftq enforces a runtime limit, `reason` says so and the
    limit fields record what it saw: the limit, where it came from, when the count began."""

    by: str
    reason: str | None = None
    limit_minutes: float | None = None
    limit_source: str | None = None
    admitted_at: datetime | None = None


class Cancelled(Event, frozen=True, tag="job.cancelled"):
    reason: str
    by: str | None = None
    fireworks_state: str | None = None
    # The job's `error` when ftq cancelled it for a reason of its own (a runtime limit).
    error: str | None = None


class Succeeded(Event, frozen=True, tag="job.succeeded"):
    fireworks_state: str


class Failed(Event, frozen=True, tag="job.failed"):
    message: str
    fireworks_state: str | None = None


class SecretsShredded(Event, frozen=True, tag="job.secrets_shredded"):
    """The job's data key was deleted: the secrets sealed in its `job.submitted` can never be
    opened again (crypto-shredding). `by` is who asked (a user's email, or "retention")."""

    by: str
    reason: str = "requested"


class DependencyFailed(Event, frozen=True, tag="job.dependency_failed"):
    """A job it waits for (`after`) ended FAIL or CANCELLED: this QUEUED job can never run, and
    FAILs (recorded by the admission loop's leader)."""

    dependency_id: str
    dependency_status: str
    message: str


class StuckDetected(Event, frozen=True, tag="job.stuck_detected"):
    """The job looks stuck on Fireworks (once per episode); flagged, not cancelled."""

    reason: str
    fireworks_state: str
    since: datetime


class StuckCleared(Event, frozen=True, tag="job.stuck_cleared"):
    """Fireworks showed a change (state or progress) of a job flagged stuck: the episode ends."""

    fireworks_state: str
    progress: float | None = None


JobEvent = (
    JobSubmitted
    | AdmissionStarted
    | Admitted
    | ReturnedToQueue
    | RejectedByFireworks
    | FireworksStateObserved
    | CancelRequested
    | Cancelled
    | Succeeded
    | Failed
    | SecretsShredded
    | DependencyFailed
    | StuckDetected
    | StuckCleared
)
