"""Events of users, API keys and the scheduler switch.

Streams: `user:<email>` for a user and their keys (one stream per email makes the log itself
refuse a second user with the same email), `scheduler` for pause/resume."""

from __future__ import annotations

from typing import Literal

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
    """A per-user PROGRESS cap; `None` returns the user to the global default."""

    user_id: str
    cap: int | None


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


UserEvent = UserAdded | UserCapSet | KeyIssued | KeyRevoked
SchedulerEvent = SchedulerPaused | SchedulerResumed
