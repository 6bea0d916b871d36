"""What `wait_for_job` reports while it follows a job: one MCP progress notification each
time the job's state, Fireworks state or percent changes.

MCP requires every notification's value to be larger than the one before, on a scale with
`total` 100: the value is the Fireworks percent scaled into 0..99, a state change that
leaves the percent where it was moves it on by a hundredth, and the end of the job (SUCCESS,
FAIL or CANCELLED) is 100. The message says what changed, in words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from service.cli.watch import FINAL, STATE_AFTER

TOTAL: Final = 100.0
TERMINAL: Final = frozenset(FINAL.values())
_SCALE: Final = 0.99  # Fireworks' 100 % is 99: only the job's end reaches TOTAL
_CEILING: Final = 99.99
_STEP: Final = 0.01


class Report(NamedTuple):
    progress: float
    message: str


def _percent(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return min(max(float(value), 0.0), 100.0)


class JobProgress:
    """A job's state as its history events move it, and the notifications that makes."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        self.state: str = job["state"]
        self.percent = _percent(job.get("progress"))
        self.fireworks_state: str | None = job.get("fireworks_state")
        self.detail = _detail(job)
        self.value = -1.0  # nothing reported yet
        self.message: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL

    def refreshed(self, job: Mapping[str, Any]) -> Report | None:
        """Take in a fresh view of the job (e.g. its queue position after a requeue)."""
        self.state = job["state"]
        if (percent := _percent(job.get("progress"))) is not None:
            self.percent = percent
        self.fireworks_state = job.get("fireworks_state") or self.fireworks_state
        self.detail = _detail(job)
        return self.report()

    def observe(self, type_: str, data: Mapping[str, Any]) -> Report | None:
        """Take in one history event; a report when it changed what the agent is told.
        A job that ended stays ended (terminal states are final in the log too)."""
        if self.ended:
            return None
        state = STATE_AFTER.get(type_)
        if state is not None and state != self.state:
            self.state, self.detail = state, None
        if type_ in FINAL or type_ == "job.returned_to_queue":
            message = data.get("message") or data.get("reason")
            self.detail = message if isinstance(message, str) and message else None
        if isinstance(data.get("fireworks_state"), str):
            self.fireworks_state = data["fireworks_state"]
        if (percent := _percent(data.get("progress"))) is not None:
            self.percent = percent
        return self.report()

    def report(self) -> Report | None:
        """The next notification, or None when nothing the agent is told has changed."""
        message = self._message()
        if message == self.message:
            return None
        if self.ended:
            value = TOTAL
        else:
            scaled = _SCALE * (self.percent or 0.0)
            value = round(min(max(scaled, self.value + _STEP), _CEILING), 2)
        if value <= self.value:
            return None
        self.value, self.message = value, message
        return Report(value, message)

    def _message(self) -> str:
        words = [self.state]
        if self.state == "PROGRESS" and self.percent is not None:
            words.append(f"{self.percent:.0f}%")
        if self.fireworks_state and self.state != "QUEUED":
            words.append(f"(Fireworks: {self.fireworks_state})")
        text = " ".join(words)
        return f"{text}: {self.detail}" if self.detail else text


def _detail(job: Mapping[str, Any]) -> str | None:
    """Why a QUEUED job waits (position, reason, ETA); a FAIL's error."""
    if job.get("state") == "QUEUED":
        parts = [
            f"position {job['queue_position']}" if job.get("queue_position") else "",
            str(job.get("pending_reason") or ""),
            f"eta {job['eta']}" if job.get("eta") else "",
        ]
        return "; ".join(p for p in parts if p) or None
    error = job.get("error")
    return error if isinstance(error, str) and error else None
