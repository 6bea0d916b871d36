"""Given/when/then for users, keys and the scheduler switch, with no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.domain.directory import (
    AddUser,
    IssueKey,
    PauseScheduler,
    ResumeScheduler,
    RevokeKey,
    SchedulerState,
    SetUserCap,
    UserCommand,
    UserState,
    decide_scheduler,
    decide_user,
    evolve_scheduler,
    evolve_user,
)
from events.domain.directory_events import (
    KeyIssued,
    KeyRevoked,
    SchedulerPaused,
    UserAdded,
    user_stream,
)
from events.domain.rejections import AlreadyExists, InvalidState, UnknownStream

NOW = datetime(2026, 11, 23, tzinfo=UTC)
ADD = AddUser(at=NOW, user_id="u1", email=" Ada@Example.COM ", role="admin")


def given(*commands: UserCommand) -> UserState:
    state = UserState()
    for command in commands:
        for event in decide_user(command, state):
            state = evolve_user(state, event)
    return state


def test_add_user_normalises_email_and_one_stream_per_email() -> None:
    [event] = decide_user(ADD, UserState())
    assert isinstance(event, UserAdded)
    assert (event.email, event.role) == ("ada@example.com", "admin")
    assert user_stream(" Ada@Example.COM ") == user_stream("ada@example.com")
    with pytest.raises(AlreadyExists):
        decide_user(ADD, given(ADD))


def test_add_user_needs_an_email() -> None:
    with pytest.raises(InvalidState):
        decide_user(AddUser(at=NOW, user_id="u", email="nobody"), UserState())


@pytest.mark.parametrize(
    "command",
    [
        SetUserCap(at=NOW, cap=2),
        IssueKey(at=NOW, key_id="k", key_hash="h"),
        RevokeKey(at=NOW, key_id="k"),
    ],
)
def test_commands_on_a_missing_user_are_refused(command: UserCommand) -> None:
    with pytest.raises(UnknownStream):
        decide_user(command, UserState())


def test_cap_must_be_in_range_and_can_return_to_default() -> None:
    assert given(ADD, SetUserCap(at=NOW, cap=3)).cap == 3
    assert given(ADD, SetUserCap(at=NOW, cap=3), SetUserCap(at=NOW, cap=None)).cap is None
    with pytest.raises(InvalidState):
        decide_user(SetUserCap(at=NOW, cap=-1), given(ADD))


def test_keys_are_issued_once_and_revoked_once() -> None:
    issue = IssueKey(at=NOW, key_id="k1", key_hash="sha", label="laptop")
    [event] = decide_user(issue, given(ADD))
    assert isinstance(event, KeyIssued) and event.key_hash == "sha"
    with pytest.raises(AlreadyExists):
        decide_user(issue, given(ADD, issue))
    [revoked] = decide_user(RevokeKey(at=NOW, key_id="k1"), given(ADD, issue))
    assert isinstance(revoked, KeyRevoked)
    done = given(ADD, issue, RevokeKey(at=NOW, key_id="k1"))
    assert (done.active_keys, done.revoked_keys) == (frozenset(), frozenset({"k1"}))
    assert decide_user(RevokeKey(at=NOW, key_id="k1"), done) == []
    with pytest.raises(AlreadyExists):  # a revoked id is never reused
        decide_user(issue, done)
    with pytest.raises(UnknownStream):
        decide_user(RevokeKey(at=NOW, key_id="other"), done)


def test_pause_and_resume_are_idempotent() -> None:
    [paused] = decide_scheduler(PauseScheduler(at=NOW, by="admin"), SchedulerState())
    assert isinstance(paused, SchedulerPaused)
    state = evolve_scheduler(SchedulerState(), paused)
    assert state.paused
    assert decide_scheduler(PauseScheduler(at=NOW, by="admin"), state) == []
    assert decide_scheduler(ResumeScheduler(at=NOW, by="admin"), SchedulerState()) == []
    [resumed] = decide_scheduler(ResumeScheduler(at=NOW, by="admin"), state)
    assert not evolve_scheduler(state, resumed).paused
