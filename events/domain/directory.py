"""Users, their keys and the scheduler switch: state, `evolve` and `decide` (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Final

import msgspec

from events.domain.decider import Decider, tags
from events.domain.directory_events import (
    SCHEDULER_STREAM,
    KeyIssued,
    KeyRevoked,
    Role,
    SchedulerEvent,
    SchedulerPaused,
    SchedulerResumed,
    UserAdded,
    UserCapSet,
    UserEvent,
    user_stream,
)
from events.domain.rejections import AlreadyExists, InvalidState, UnknownStream

MAX_USER_CAP = 1024


class AddUser(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    user_id: str
    email: str
    role: Role = "member"


class SetUserCap(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    cap: int | None


class IssueKey(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    key_id: str
    key_hash: str
    label: str | None = None


class RevokeKey(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    key_id: str


class PauseScheduler(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    by: str
    reason: str | None = None


class ResumeScheduler(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    by: str


UserCommand = AddUser | SetUserCap | IssueKey | RevokeKey
SchedulerCommand = PauseScheduler | ResumeScheduler


class UserState(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 0
    user_id: str | None = None
    email: str = ""
    role: Role = "member"
    cap: int | None = None
    active_keys: frozenset[str] = frozenset()
    revoked_keys: frozenset[str] = frozenset()


class SchedulerState(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 0
    paused: bool = False


def evolve_user(state: UserState, event: UserEvent) -> UserState:
    version = state.version + 1
    match event:
        case UserAdded():
            return UserState(
                version=version, user_id=event.user_id, email=event.email, role=event.role
            )
        case UserCapSet():
            return msgspec.structs.replace(state, version=version, cap=event.cap)
        case KeyIssued():
            keys = state.active_keys | {event.key_id}
            return msgspec.structs.replace(state, version=version, active_keys=keys)
        case KeyRevoked():
            return msgspec.structs.replace(
                state,
                version=version,
                active_keys=state.active_keys - {event.key_id},
                revoked_keys=state.revoked_keys | {event.key_id},
            )


def decide_user(command: UserCommand, state: UserState) -> list[UserEvent]:
    if isinstance(command, AddUser):
        if state.user_id is not None:
            raise AlreadyExists(f"a user with email {state.email} already exists")
        if "@" not in command.email:
            raise InvalidState("email must contain '@'")
        email = command.email.strip().lower()
        return [UserAdded(at=command.at, user_id=command.user_id, email=email, role=command.role)]
    if state.user_id is None:
        raise UnknownStream("no such user")
    match command:
        case SetUserCap():
            if command.cap is not None and not 0 <= command.cap <= MAX_USER_CAP:
                raise InvalidState(f"cap must be between 0 and {MAX_USER_CAP}")
            return [UserCapSet(at=command.at, user_id=state.user_id, cap=command.cap)]
        case IssueKey():
            if command.key_id in state.active_keys | state.revoked_keys:
                raise AlreadyExists("key id already used")
            return [
                KeyIssued(
                    at=command.at,
                    key_id=command.key_id,
                    user_id=state.user_id,
                    key_hash=command.key_hash,
                    label=command.label,
                )
            ]
        case RevokeKey():
            if command.key_id in state.revoked_keys:
                return []
            if command.key_id not in state.active_keys:
                raise UnknownStream("no such key")
            return [KeyRevoked(at=command.at, key_id=command.key_id, user_id=state.user_id)]


def evolve_scheduler(state: SchedulerState, event: SchedulerEvent) -> SchedulerState:
    match event:
        case SchedulerPaused():
            return SchedulerState(version=state.version + 1, paused=True)
        case SchedulerResumed():
            return SchedulerState(version=state.version + 1, paused=False)


def decide_scheduler(command: SchedulerCommand, state: SchedulerState) -> list[SchedulerEvent]:
    """Pause and resume are idempotent: asking for the current state records nothing."""
    match command:
        case PauseScheduler():
            if state.paused:
                return []
            return [SchedulerPaused(at=command.at, by=command.by, reason=command.reason)]
        case ResumeScheduler():
            if not state.paused:
                return []
            return [SchedulerResumed(at=command.at, by=command.by)]


def sets_a_cap(before: UserState, after: UserState, events: Sequence[UserEvent]) -> bool:
    """A cap change may free slots (or take them): it takes the admission gate."""
    return any(isinstance(event, UserCapSet) for event in events)


def _the_scheduler(_: object) -> str:
    return SCHEDULER_STREAM  # one scheduler: its key and its stream


USER: Final[Decider[UserCommand, UserState, UserEvent]] = Decider(
    "user", UserState(), decide_user, evolve_user, tags(UserEvent),
    key=attrgetter("email"), stream_id=user_stream, frees_a_slot=sets_a_cap,
)  # fmt: skip
SCHEDULER: Final[Decider[SchedulerCommand, SchedulerState, SchedulerEvent]] = Decider(
    "scheduler", SchedulerState(), decide_scheduler, evolve_scheduler, tags(SchedulerEvent),
    key=_the_scheduler, stream_id=_the_scheduler,
)  # fmt: skip
