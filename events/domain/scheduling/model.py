"""The planner's vocabulary: queued and running jobs, size classes and caps, policies, plans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, Literal

import msgspec

PolicyName = Literal["strict-fifo", "backfill", "reserve", "fair-share"]
POLICIES: Final[tuple[PolicyName, ...]] = ("strict-fifo", "backfill", "reserve", "fair-share")
SizeClass = Literal["small", "big"]
CLASSES: Final[tuple[SizeClass, ...]] = ("small", "big")
GPU_TYPES: Final = ("h200", "b200", "h100")
DEFAULT_GPU_TYPE: Final = "h200"
DEFAULT_PRIORITY: Final = 50
MAX_PRIORITY: Final = 100


class Job(msgspec.Struct, frozen=True, gc=False):
    """A QUEUED job as the planner sees it."""

    job_id: str
    user_id: str
    created_at: datetime
    gpu_count: int
    gpu_type: str = DEFAULT_GPU_TYPE
    kind: str = "SFT"
    priority: int = DEFAULT_PRIORITY
    max_runtime_minutes: int | None = None


class Running(msgspec.Struct, frozen=True, gc=False):
    """A job in PROGRESS: it holds its user's slot in its class and GPUs of its type until
    `expected_end` (its start plus its runtime estimate, as known now). Only the policies
    that reserve read `expected_end` (`Policy.reserves`): for the others it may be given as
    the start, sparing an estimate per running job."""

    job_id: str
    user_id: str
    gpu_count: int
    started_at: datetime
    expected_end: datetime
    gpu_type: str = DEFAULT_GPU_TYPE
    kind: str = "SFT"


class Limits(msgspec.Struct, frozen=True):
    """Size classes and caps, in force under every policy.

    `big_job_gpus` = 0 turns classes off (every job is `small`). A cap of None is no cap.
    `user_caps` overrides the class cap per (user, class); a None value there is no cap.
    `big_job_reserve`: GPUs (of the job's type) a big admission must leave free."""

    big_job_gpus: int = 0
    cap_small: int | None = 1
    cap_big: int | None = 1
    big_job_reserve: int = 0
    user_caps: Mapping[tuple[str, str], int | None] = msgspec.field(default_factory=dict)

    def size_class(self, gpu_count: int) -> SizeClass:
        return "big" if self.big_job_gpus and gpu_count >= self.big_job_gpus else "small"

    def cap(self, user_id: str, size_class: str) -> int | None:
        key = (user_id, size_class)
        if key in self.user_caps:
            return self.user_caps[key]
        return self.cap_small if size_class == "small" else self.cap_big

    def reserve_for(self, size_class: str) -> int:
        return self.big_job_reserve if size_class == "big" else 0


class Policy(msgspec.Struct, frozen=True):
    """A policy's name and its knobs (hours); `weights` are fair-share weights per user."""

    name: PolicyName = "strict-fifo"
    half_life_hours: float = 168.0
    max_wait_hours: float = 72.0
    aging_hours: float = 6.0
    weights: Mapping[str, float] = msgspec.field(default_factory=dict)

    def weight(self, user_id: str) -> float:
        return self.weights.get(user_id, 1.0)

    @property
    def reserves(self) -> bool:
        """Whether the policy reserves GPUs for its first blocked job (EASY backfill), and so
        reads the running jobs' `expected_end`."""
        return self.name in ("reserve", "fair-share")


class Reservation(msgspec.Struct, frozen=True, gc=False):
    """The first blocked job of a GPU type: the time enough GPUs free up for it (by the
    estimates) and how many GPUs beyond its need are free then (`spare`)."""

    job_id: str
    gpu_type: str
    at: datetime
    spare: int


class Admission(msgspec.Struct, frozen=True, gc=False):
    """A job to admit now, with what its admission event records (the audit's evidence)."""

    job: Job
    queue_position: int
    available_before: int  # free GPUs of the job's type before this admission
    size_class: SizeClass
    cap: int | None
    user_load: int  # the user's jobs of this class in PROGRESS (or admitted) before this one
    reservation: Reservation | None = None  # of this type, in force when admitted
    spare_before: int | None = None  # the reservation's spare GPUs before this admission
    estimate_s: float | None = None  # runtime estimate used against the reservation
    usage: float | None = None  # the user's decayed usage / weight (fair-share)
    holders: tuple[str, ...] = ()  # jobs holding a reservation (any type): they keep a slot


class Pending(msgspec.Struct, frozen=True, gc=False):
    job: Job
    queue_position: int
    reason: str


class Plan(msgspec.Struct, frozen=True):
    """One pass: admissions in the order to make them, the rest with positions and reasons.
    `order` is every queued job's id in the policy's order (position = index + 1)."""

    admit: list[Admission]
    pending: Sequence[Pending]  # built when read (`explain.Explained`)
    order: Sequence[str]  # listed when read (`explain.Ids`)
    reservations: dict[str, Reservation]
    available_after: dict[str, int]
    policy: PolicyName = "strict-fifo"
