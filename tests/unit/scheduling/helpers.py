"""Builders shared by the scheduling tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.domain.scheduling import Job, Running

T0 = datetime(2026, 4, 20, tzinfo=UTC)


def job(
    n: int,
    user: str,
    gpus: int = 4,
    gpu_type: str = "h200",
    *,
    kind: str = "SFT",
    at: float | None = None,
    priority: int = 50,
    max_runtime_minutes: int | None = None,
) -> Job:
    """Job `n` of `user`, created `at` seconds after T0 (default: n seconds)."""
    created = T0 + timedelta(seconds=n if at is None else at)
    return Job(f"j{n}", user, created, gpus, gpu_type, kind, priority, max_runtime_minutes)


def running(
    n: int,
    user: str,
    gpus: int = 4,
    gpu_type: str = "h200",
    *,
    ends_in_s: float = 3600.0,
    now: datetime = T0,
) -> Running:
    return Running(
        f"r{n}",
        user,
        gpus,
        now - timedelta(hours=1),
        now + timedelta(seconds=ends_in_s),
        gpu_type,
    )
