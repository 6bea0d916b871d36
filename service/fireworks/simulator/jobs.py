"""One simulated job: its state is computed lazily from the clock and a script of overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from events.domain.job_events import Kind
from service.fireworks.kinds import COLLECTION

TERMINAL_STATES = frozenset(
    {
        "JOB_STATE_COMPLETED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_EARLY_STOPPED",
        "JOB_STATE_DELETED",
        "JOB_STATE_ARCHIVED",
    }
)
RESUMABLE_STATES = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_PAUSED"})

ACCELERATOR = "NVIDIA_H200_141GB"
COST_PER_GPU_HOUR = 6.0

# Natural timeline as fractions of job_seconds: (start fraction, state).
PHASES: tuple[tuple[float, str], ...] = (
    (0.0, "JOB_STATE_CREATING"),
    (0.05, "JOB_STATE_PENDING"),
    (0.15, "JOB_STATE_RUNNING"),
    (0.9, "JOB_STATE_WRITING_RESULTS"),
    (1.0, "JOB_STATE_COMPLETED"),
)


def rfc3339(t: float) -> str:
    """Proto3 JSON timestamp, UTC with a `Z`."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Override:
    """From `at` on the job is in `state` (cancel, injected outcome)."""

    at: float
    state: str
    code: str = "OK"
    message: str = ""


@dataclass
class SimJob:
    """A job as the simulator keeps it; `view()` renders what Fireworks would return."""

    kind: Kind
    job_id: str
    account_id: str
    payload: dict[str, Any]
    gpus: int
    created_at: float
    run_start: float
    job_seconds: float
    external: bool = False
    deleted: bool = False
    gpu_type: str = "h200"
    script: list[Override] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"accounts/{self.account_id}/{COLLECTION[self.kind]}/{self.job_id}"

    def _override(self, now: float) -> Override | None:
        current = None
        for step in self.script:
            if step.at <= now:
                current = step
        return current

    def _natural(self, now: float) -> tuple[str, float]:
        """Natural state at `now` and the time it was entered."""
        fraction = (now - self.run_start) / self.job_seconds if self.job_seconds > 0 else 1.0
        state, since = PHASES[0][1], self.run_start
        for start, phase in PHASES:
            if fraction >= start:
                state, since = phase, self.run_start + start * self.job_seconds
        return state, since

    def state_at(self, now: float) -> str:
        step = self._override(now)
        return step.state if step else self._natural(now)[0]

    def entered_at(self, now: float) -> float:
        """When the job entered its current state."""
        step = self._override(now)
        return step.at if step else self._natural(now)[1]

    def holds_gpus(self, now: float) -> bool:
        return not self.deleted and self.state_at(now) not in TERMINAL_STATES

    def percent_at(self, now: float) -> float:
        step = self._override(now)
        frozen_at = self.script[0].at if step and self.script else now
        if step is None and self._natural(now)[0] == "JOB_STATE_COMPLETED":
            return 100.0
        if self.job_seconds <= 0:
            return 100.0
        return max(0.0, min(100.0, round((frozen_at - self.run_start) / self.job_seconds * 100)))

    def view(self, now: float) -> dict[str, Any]:
        """The job as Fireworks' JSON, with the read-only fields filled in."""
        state = self.state_at(now)
        step = self._override(now)
        body: dict[str, Any] = {**self.payload, "name": self.name}
        body["createTime"] = rfc3339(self.created_at)
        body["state"] = state
        body["status"] = {"code": step.code if step else "OK"}
        if step and step.message:
            body["status"]["message"] = step.message
        if state in TERMINAL_STATES:
            body["completedTime"] = rfc3339(self.entered_at(now))
        output_model = f"accounts/{self.account_id}/models/{self.job_id}"
        if self.kind == "SFT":
            body.setdefault("outputModel", output_model)
            moving = state not in TERMINAL_STATES and step is None
            body["updateTime"] = rfc3339(now if moving else self.entered_at(now))
        else:
            config = body.get("trainingConfig")
            body["trainingConfig"] = {
                "outputModel": output_model,
                **(config if isinstance(config, dict) else {}),
            }
        if self.kind in ("SFT", "RFT"):
            body["jobProgress"] = {"percent": self.percent_at(now)}
        if state in TERMINAL_STATES:
            body.update(self._accounting(now))
        return body

    def _accounting(self, now: float) -> dict[str, Any]:
        """Plausible figures once the job ended: RFT reports `acceleratorSeconds` (GPUs x
        wall time since it started running), SFT and DPO an `estimatedCost` at a GPU-hour
        price of COST_PER_GPU_HOUR."""
        seconds = max(0.0, self.entered_at(now) - self.run_start) * self.gpus
        if self.kind == "RFT":
            return {"acceleratorSeconds": {ACCELERATOR: str(round(seconds))}}
        cost = seconds / 3600 * COST_PER_GPU_HOUR
        units = int(cost)
        nanos = round((cost - units) * 1e9)
        return {"estimatedCost": {"currencyCode": "USD", "units": str(units), "nanos": nanos}}
