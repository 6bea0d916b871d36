"""The service's one clock. Every command's `at` and every "now" of the shell comes from a
`Clock`: production uses `utcnow`, tests inject their own (the admission loop, cancellation,
the directory and the handlers' `Runtime.clock` take one). The domain never reads a clock:
times arrive inside commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
