"""Injected misbehaviour: random 5xx and 429s, latency, and create responses that get lost."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

LoseMode = Literal["503", "abort"]


@dataclass
class Faults:
    """Fault knobs; rates are probabilities per API request (control routes are exempt)."""

    error_rate: float = 0.0
    error_status: int = 503
    rate_429: float = 0.0
    retry_after: float | None = None
    latency_ms: float = 0.0
    quota_latency_ms: float = 0.0  # only the quotas routes (a hanging quota endpoint)
    lose_create_responses: float = 0.0
    lose_next_creates: int = 0
    lose_mode: LoseMode = "503"
    rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a JSON patch of knobs (the `/_sim/faults` body); unknown keys are refused."""
        allowed = {
            "error_rate": float,
            "error_status": int,
            "rate_429": float,
            "retry_after": float,
            "latency_ms": float,
            "quota_latency_ms": float,
            "lose_create_responses": float,
            "lose_next_creates": int,
            "lose_mode": str,
        }
        for key, raw in changes.items():
            if key not in allowed:
                raise ValueError(f"unknown fault {key!r}")
            value = None if raw is None else allowed[key](raw)
            if key == "lose_mode" and value not in ("503", "abort"):
                raise ValueError("lose_mode must be '503' or 'abort'")
            if value is None and key != "retry_after":
                raise ValueError(f"{key} may not be null")
            setattr(self, key, value)

    def reset(self) -> None:
        """Back to a well-behaved server."""
        self.update(
            {
                "error_rate": 0.0,
                "rate_429": 0.0,
                "retry_after": None,
                "latency_ms": 0.0,
                "quota_latency_ms": 0.0,
                "lose_create_responses": 0.0,
                "lose_next_creates": 0,
            }
        )

    def snapshot(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "rng"}

    def roll_error(self) -> bool:
        return self.error_rate > 0 and self.rng.random() < self.error_rate

    def roll_429(self) -> bool:
        return self.rate_429 > 0 and self.rng.random() < self.rate_429

    def roll_lost_create(self) -> bool:
        """Whether the response to a create that did succeed should be lost."""
        if self.lose_next_creates > 0:
            self.lose_next_creates -= 1
            return True
        return self.lose_create_responses > 0 and self.rng.random() < self.lose_create_responses
