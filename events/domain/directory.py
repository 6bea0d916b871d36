"""Users, their keys and the scheduler switch: state, `evolve` and `decide` (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Final, Literal

import msgspec

from events.domain.decider import Decider, tags
from events.domain.directory_events import (
    SCHEDULER_STREAM,
    KeyIssued,
    KeyRevoked,
    PolicyInForce,
    Role,
    SchedulerEvent,
    SchedulerPaused,
    SchedulerResumed,
    UserAdded,
    UserCapSet,
    UserEvent,
    UserMaxPrioritySet,
    UserShareSet,
    user_stream,
)
from events.domain.rejections import AlreadyExists, InvalidState, UnknownStream

MAX_USER_CAP = 1024
MAX_SHARE = 1_000_000.0
MAX_PRIORITY = 100


class AddUser(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    user_id: str
    email: str
    role: Role = "member"


class SetUserCap(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    cap: int | None
    size_class: Literal["small", "big"] = "small"
    unlimited: bool = False


class SetUserShare(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    share: float | None


class SetUserMaxPriority(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    max_priority: int | None


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


class RecordPolicy(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    policy: str
    settings: dict[str, Any]


UserCommand = AddUser | SetUserCap | SetUserShare | SetUserMaxPriority | IssueKey | RevokeKey
SchedulerCommand = PauseScheduler | ResumeScheduler | RecordPolicy


class UserState(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 0
    user_id: str | None = None
    email: str = ""
    role: Role = "member"
    cap: int | None = None  # small (the one cap when classes are off)
    cap_big: int | None = None
    unlimited: frozenset[str] = frozenset()  # classes with no hard cap for this user
    share: float | None = None
    max_priority: int | None = None
    active_keys: frozenset[str] = frozenset()
    revoked_keys: frozenset[str] = frozenset()


class SchedulerState(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 0
    paused: bool = False
    policy: str | None = None  # the policy last recorded in force, and its settings
    policy_settings: dict[str, Any] = msgspec.field(default_factory=dict)


def evolve_user(state: UserState, event: UserEvent) -> UserState:
    version = state.version + 1
    match event:
        case UserAdded():
            return UserState(
                version=version, user_id=event.user_id, email=event.email, role=event.role
            )
        case UserCapSet():
            unlimited = state.unlimited - {event.size_class}
            if event.unlimited:
                unlimited |= {event.size_class}
            if event.size_class == "big":
                return msgspec.structs.replace(
                    state, version=version, cap_big=event.cap, unlimited=unlimited
                )
            return msgspec.structs.replace(
                state, version=version, cap=event.cap, unlimited=unlimited
            )
        case UserShareSet():
            return msgspec.structs.replace(state, version=version, share=event.share)
        case UserMaxPrioritySet():
            return msgspec.structs.replace(state, version=version, max_priority=event.max_priority)
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
            if command.size_class not in ("small", "big"):
                raise InvalidState("class must be small or big")
            unlimited = command.unlimited and command.cap is None
            return [
                UserCapSet(
                    at=command.at,
                    user_id=state.user_id,
                    cap=command.cap,
                    size_class=command.size_class,
                    unlimited=unlimited,
                )
            ]
        case SetUserShare():
            share = command.share
            if share is not None and not (math.isfinite(share) and 0 < share <= MAX_SHARE):
                raise InvalidState(f"share must be a number above 0 and at most {MAX_SHARE:g}")
            return [UserShareSet(at=command.at, user_id=state.user_id, share=share)]
        case SetUserMaxPriority():
            top = command.max_priority
            if top is not None and not 0 <= top <= MAX_PRIORITY:
                raise InvalidState(f"max priority must be between 0 and {MAX_PRIORITY}")
            return [UserMaxPrioritySet(at=command.at, user_id=state.user_id, max_priority=top)]
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
            return msgspec.structs.replace(state, version=state.version + 1, paused=True)
        case SchedulerResumed():
            return msgspec.structs.replace(state, version=state.version + 1, paused=False)
        case PolicyInForce():
            return msgspec.structs.replace(
                state,
                version=state.version + 1,
                policy=event.policy,
                policy_settings=dict(event.settings),
            )


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
        case RecordPolicy():
            if state.policy == command.policy and state.policy_settings == command.settings:
                return []
            return [PolicyInForce(at=command.at, policy=command.policy, settings=command.settings)]


def sets_a_cap(before: UserState, after: UserState, events: Sequence[UserEvent]) -> bool:
    """A cap or share change may free slots (or take them): it takes the admission gate."""
    return any(isinstance(event, UserCapSet | UserShareSet) for event in events)


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
