"""Events of users, API keys and the scheduler switch.

Streams: `user:<email>` for a user and their keys (one stream per email makes the log itself
refuse a second user with the same email), `scheduler` for pause/resume."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from events.domain.job_events import Event

Role = Literal["member", "admin"]
SCHEDULER_STREAM = "scheduler"


def user_stream(email: str) -> str:
    return f"user:{email.strip().lower()}"


class UserAdded(Event, frozen=True, tag="user.added"):
    user_id: str
    email: str
    role: Role


class UserCapSet(Event, frozen=True, tag="user.cap_set"):
    """A per-user PROGRESS cap of one size class (`small` is the one cap when classes are
    off); `cap` None returns the user to the default, unless `unlimited` (no hard cap)."""

    user_id: str
    cap: int | None
    size_class: Literal["small", "big"] = "small"
    unlimited: bool = False


class UserShareSet(Event, frozen=True, tag="user.share_set"):
    """A user's fair-share weight (None: the default, 1)."""

    user_id: str
    share: float | None


class UserMaxPrioritySet(Event, frozen=True, tag="user.max_priority_set"):
    """The highest priority a member may submit with (None: the default, 50)."""

    user_id: str
    max_priority: int | None


class KeyIssued(Event, frozen=True, tag="key.issued"):
    """Only the key's SHA-256 is recorded; the plaintext is shown once and never stored."""

    key_id: str
    user_id: str
    key_hash: str
    label: str | None = None


class KeyRevoked(Event, frozen=True, tag="key.revoked"):
    key_id: str
    user_id: str


class SchedulerPaused(Event, frozen=True, tag="scheduler.paused"):
    by: str
    reason: str | None = None


class SchedulerResumed(Event, frozen=True, tag="scheduler.resumed"):
    by: str


class PolicyInForce(Event, frozen=True, tag="scheduler.policy_in_force"):
    """The admission policy and limits a leader admits with, recorded when a leader starts
    with them or they change: the audit checks each later admission against them."""

    policy: str
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


UserEvent = UserAdded | UserCapSet | UserShareSet | UserMaxPrioritySet | KeyIssued | KeyRevoked
SchedulerEvent = SchedulerPaused | SchedulerResumed | PolicyInForce
