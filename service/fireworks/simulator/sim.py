"""`Simulator`: config, clock, state and faults of one fake Fireworks account."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events.domain.job_events import Kind

from .faults import Faults
from .jobs import rfc3339
from .state import GPU_QUOTA, SimState


@dataclass
class SimConfig:
    """Static knobs; `serve_sft_dpo_cancel=False` makes SFT/DPO `:cancel` 404 like older APIs."""

    account_id: str = "ftq-sim"
    api_key: str = "sim-key"
    quota: int = 8
    job_seconds: float = 60.0
    default_gpus: int = 4
    cancel_seconds: float = 1.0
    serve_sft_dpo_cancel: bool = True
    seed: int = 0


class Simulator:
    """A fake Fireworks account that tests drive in-process or over `/_sim/...` routes."""

    def __init__(
        self, config: SimConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or SimConfig()
        self._clock = clock
        self.offset = 0.0
        self.faults = Faults(rng=random.Random(self.config.seed))
        self.state = SimState(
            account_id=self.config.account_id,
            quota=self.config.quota,
            job_seconds=self.config.job_seconds,
            now=self.now,
            default_gpus=self.config.default_gpus,
            cancel_seconds=self.config.cancel_seconds,
        )

    def now(self) -> float:
        """The injected clock plus however far tests have advanced it."""
        return self._clock() + self.offset

    def advance(self, seconds: float) -> None:
        """Move simulated time forward; job states follow lazily."""
        self.offset += seconds
        self.state.refresh_usage()

    def configure(self, changes: dict[str, Any]) -> None:
        """Change `serve_sft_dpo_cancel`, `job_seconds`, `default_gpus` or `cancel_seconds`."""
        for key, value in changes.items():
            if key == "serve_sft_dpo_cancel":
                self.config.serve_sft_dpo_cancel = bool(value)
            elif key in ("job_seconds", "cancel_seconds"):
                setattr(self.config, key, float(value))
                setattr(self.state, key, float(value))
            elif key == "default_gpus":
                self.config.default_gpus = self.state.default_gpus = int(value)
            else:
                raise ValueError(f"unknown config {key!r}")

    def set_outcome(
        self, job_id: str, state: str, message: str = "", code: str | None = None
    ) -> None:
        """Force a job into FAILED, EXPIRED, EARLY_STOPPED, PAUSED or any (future) state."""
        default_code = {"JOB_STATE_FAILED": "INTERNAL", "JOB_STATE_CANCELLED": "CANCELLED"}
        self.state.set_outcome(job_id, state, code or default_code.get(state, "OK"), message)

    def delete_externally(self, job_id: str) -> None:
        """Someone deleted the job outside ftq: GET now 404s."""
        self.state.delete(job_id)

    def start_external_job(
        self, gpus: int, job_id: str | None = None, kind: Kind = "SFT", *, force: bool = False
    ) -> str:
        """A job started outside ftq holding `gpus` GPUs; `force` lets it exceed the quota."""
        job_id = job_id or f"external-{uuid.uuid4().hex[:12]}"
        payload: dict[str, Any] = {"dataset": "external", "displayName": "started outside ftq"}
        if kind == "SFT":
            payload["baseModel"] = "accounts/fireworks/models/external"
        elif kind == "DPO":
            payload["trainingConfig"] = {"baseModel": "accounts/fireworks/models/external"}
        else:
            payload["evaluator"] = "external"
        limit = self.state.quotas[GPU_QUOTA].value
        if force:
            self.state.quotas[GPU_QUOTA].value = 1 << 30
        try:
            self.state.create(kind, job_id, payload, gpus, external=True)
        finally:
            self.state.quotas[GPU_QUOTA].value = limit
        return job_id

    @property
    def max_usage_seen(self) -> float:
        return self.state.max_usage_seen

    def snapshot(self) -> dict[str, Any]:
        """Everything a test asserts on: jobs, usage, peak usage, create counts, faults."""
        t = self.now()
        usage = self.state.refresh_usage()
        return {
            "now": rfc3339(t),
            "quota": self.state.quotas[GPU_QUOTA].value,
            "usage": usage,
            "max_usage_seen": self.state.max_usage_seen,
            "jobs": [
                {
                    "id": job.job_id,
                    "kind": job.kind,
                    "state": "DELETED" if job.deleted else job.state_at(t),
                    "gpus": job.gpus,
                    "holds_gpus": job.holds_gpus(t),
                    "external": job.external,
                    "deleted": job.deleted,
                }
                for job in self.state.jobs.values()
            ],
            "create_requests": dict(self.state.create_requests),
            "jobs_created": dict(self.state.jobs_created),
            "cancel_requests": dict(self.state.cancel_requests),
            "faults": self.faults.snapshot(),
            "serve_sft_dpo_cancel": self.config.serve_sft_dpo_cancel,
        }
