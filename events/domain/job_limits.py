"""Operating rules for jobs on Fireworks: the runtime limit and stuck detection. Pure: the
clock and the thresholds arrive as arguments (the settings are read by the shell).

- Runtime limit: a job's own `max_runtime_minutes` wins over the default
  (`FTQ_MAX_RUNTIME_HOURS`); it counts from the admission (Fireworks confirmed the job).
- Stuck: waiting on Fireworks (CREATING, PENDING, PAUSED) for longer than the stuck
  threshold, or no change of Fireworks state or progress for longer than the stalled
  threshold in any other live state (RUNNING, and states ftq does not know)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal

import msgspec

from events.domain.job_events import CancelRequested, StuckDetected

MAX_RUNTIME_MINUTES: Final = 43_200  # 30 days: the largest `max_runtime_minutes` accepted
LimitSource = Literal["job", "FTQ_MAX_RUNTIME_HOURS"]
WAITING_STATES: Final = frozenset({"JOB_STATE_CREATING", "JOB_STATE_PENDING", "JOB_STATE_PAUSED"})


class RuntimeLimit(msgspec.Struct, frozen=True, kw_only=True):
    """The limit in force for one job, and where it comes from."""

    minutes: float
    source: LimitSource

    @property
    def message(self) -> str:
        return f"max runtime exceeded ({minutes_text(self.minutes)} min)"


def minutes_text(minutes: float) -> str:
    """5 -> "5", 1.5 -> "1.5" (a default given in hours need not be whole minutes)."""
    return f"{minutes:g}"


def runtime_limit(own_minutes: int | None, default_minutes: float | None) -> RuntimeLimit | None:
    """The job's own limit, else the default, else None (no limit)."""
    if own_minutes is not None:
        return RuntimeLimit(minutes=own_minutes, source="job")
    if default_minutes is not None:
        return RuntimeLimit(minutes=default_minutes, source="FTQ_MAX_RUNTIME_HOURS")
    return None


def runtime_exceeded(
    admitted_at: datetime | None, limit: RuntimeLimit | None, at: datetime
) -> bool:
    """Whether a job admitted at `admitted_at` has run past `limit` at `at`."""
    if admitted_at is None or limit is None:
        return False
    return at - admitted_at >= timedelta(minutes=limit.minutes)


def stuck_reason(
    fireworks_state: str | None,
    state_since: datetime | None,
    changed_at: datetime | None,
    at: datetime,
    *,
    stuck_minutes: float,
    stalled_minutes: float,
) -> str | None:
    """Why a live job counts as stuck at `at`, in plain words (None: it does not).

    `state_since`: when ftq first saw the current Fireworks state; `changed_at`: when it last
    saw the state or the progress change."""
    if fireworks_state is None or state_since is None:
        return None
    short = fireworks_state.removeprefix("JOB_STATE_")
    if fireworks_state in WAITING_STATES:
        waited = at - state_since
        if waited > timedelta(minutes=stuck_minutes):
            return (
                f"{short} on Fireworks for {_minutes(waited)} min"
                f" (over {minutes_text(stuck_minutes)})"
            )
        return None
    still = at - (changed_at or state_since)
    if still > timedelta(minutes=stalled_minutes):
        return (
            f"no change of state or progress on Fireworks for {_minutes(still)} min while"
            f" {short} (over {minutes_text(stalled_minutes)})"
        )
    return None


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def limit_cancel(
    own_minutes: int | None,
    default_minutes: float | None,
    admitted_at: datetime | None,
    at: datetime,
) -> CancelRequested | None:
    """ftq's request to cancel a job that has run past its limit at `at` (None: not due)."""
    limit = runtime_limit(own_minutes, default_minutes)
    if limit is None or not runtime_exceeded(admitted_at, limit, at):
        return None
    return CancelRequested(
        at=at,
        by="ftq",
        reason=limit.message,
        limit_minutes=limit.minutes,
        limit_source=limit.source,
        admitted_at=admitted_at,
    )


def stuck_event(
    fireworks_state: str | None,
    state_since: datetime | None,
    changed_at: datetime | None,
    at: datetime,
    *,
    stuck_minutes: float,
    stalled_minutes: float,
) -> StuckDetected | None:
    """The flag of a job that looks stuck at `at` (None: it does not); `since` is when the
    wait (or the stall) began."""
    reason = stuck_reason(
        fireworks_state,
        state_since,
        changed_at,
        at,
        stuck_minutes=stuck_minutes,
        stalled_minutes=stalled_minutes,
    )
    if reason is None or fireworks_state is None or state_since is None:
        return None
    since = state_since if fireworks_state in WAITING_STATES else (changed_at or state_since)
    return StuckDetected(at=at, reason=reason, fireworks_state=fireworks_state, since=since)
