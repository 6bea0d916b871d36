"""What a Fireworks job state means for the ftq job (fireworks-api.md §4).

EARLY_STOPPED counts as SUCCESS: the `earlyStop` option fired and a model was written.
Unknown states (the enum drifts) count as still running; the caller logs them."""

from __future__ import annotations

from typing import Literal

Outcome = Literal["running", "success", "fail", "cancelled", "going_away"]

_RUNNING = frozenset(
    {
        "JOB_STATE_UNSPECIFIED",
        "JOB_STATE_CREATING",
        "JOB_STATE_PENDING",
        "JOB_STATE_VALIDATING",
        "JOB_STATE_CREATING_INPUT_DATASET",
        "JOB_STATE_RUNNING",
        "JOB_STATE_WRITING_RESULTS",
        "JOB_STATE_RE_QUEUEING",
        "JOB_STATE_IDLE",
        "JOB_STATE_CANCELLING",
        "JOB_STATE_PAUSED",
    }
)
_OUTCOMES: dict[str, Outcome] = {
    "JOB_STATE_COMPLETED": "success",
    "JOB_STATE_EARLY_STOPPED": "success",
    "JOB_STATE_FAILED": "fail",
    "JOB_STATE_EXPIRED": "fail",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_DELETED": "cancelled",
    "JOB_STATE_ARCHIVED": "cancelled",
    "JOB_STATE_DELETING": "going_away",
    "JOB_STATE_DELETING_CLEANING_UP": "going_away",
}


def outcome_of(fireworks_state: str) -> Outcome:
    """Map a Fireworks `state` onto what it means for the ftq job."""
    return _OUTCOMES.get(fireworks_state, "running")


def is_known(fireworks_state: str) -> bool:
    return fireworks_state in _RUNNING or fireworks_state in _OUTCOMES


def is_final(fireworks_state: str) -> bool:
    """The Fireworks job is over: it succeeded, failed or was cancelled (or deleted)."""
    return outcome_of(fireworks_state) in ("success", "fail", "cancelled")


def is_leaving(fireworks_state: str) -> bool:
    """A cancel or a delete of the Fireworks job is under way."""
    return fireworks_state == "JOB_STATE_CANCELLING" or outcome_of(fireworks_state) == "going_away"


def is_live(fireworks_state: str) -> bool:
    """The Fireworks job still runs (or will): neither over nor on its way out."""
    return not is_final(fireworks_state) and not is_leaving(fireworks_state)
