"""GPU-hour accounting: the one definition in ftq. Pure: no IO, no clock.

A job uses `gpu_count` GPUs from its admission (Fireworks confirmed the job exists:
`admitted_at`) until it ends (`completed_at`; a job still running counts up to `now`).
Within a window [from, to) only the part of that interval inside the window counts, and
grouping by day (UTC) splits a job across the days it ran. Fireworks' own figures
(`acceleratorSeconds`, `estimatedCost`), when it reported them, are shared out in the same
proportion as the job's GPU time (a job that ran 3 of its 4 hours inside the window brings
3/4 of them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from events.domain.job import JobState

Group = Literal["user", "kind", "day"]
GROUPS: tuple[Group, ...] = ("user", "kind", "day")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class JobUsage(msgspec.Struct, frozen=True, kw_only=True):
    """One admitted job's accounting row (the `job_usage` projection)."""

    job_id: str
    user_id: str
    user_email: str
    kind: str
    gpu_count: int
    admitted_at: datetime
    completed_at: datetime | None = None
    accelerator_seconds: float | None = None
    estimated_cost: float | None = None


class UsageRow(msgspec.Struct, frozen=True, kw_only=True):
    """One line of `GET /usage`."""

    group: str
    jobs: int
    gpu_seconds: float
    accelerator_seconds: float | None
    estimated_cost: float | None


class HourBucket(msgspec.Struct, frozen=True, kw_only=True):
    """GPU time used in one hour [hour, hour + 1h): `gpus` is the average number in use."""

    hour: datetime
    gpu_seconds: float
    gpus: float


def usage_of(state: JobState) -> JobUsage | None:
    """The accounting row of a folded job; None for a job never admitted."""
    if state.admitted_at is None:
        return None
    return JobUsage(
        job_id=state.job_id,
        user_id=state.user_id,
        user_email=state.user_email,
        kind=state.kind,
        gpu_count=state.gpu_count,
        admitted_at=state.admitted_at,
        completed_at=state.completed_at,
        accelerator_seconds=state.accelerator_seconds,
        estimated_cost=state.estimated_cost,
    )


def _end(usage: JobUsage, now: datetime) -> datetime:
    end = usage.completed_at if usage.completed_at is not None else now
    return max(end, usage.admitted_at)


def _overlap(usage: JobUsage, start: datetime, stop: datetime, now: datetime) -> float | None:
    """Seconds of the job's interval inside [start, stop); None if they do not meet. A job
    that ended the instant it was admitted meets the window holding that instant."""
    begin, end = usage.admitted_at, _end(usage, now)
    if begin == end:
        return 0.0 if start <= begin < stop else None
    lo, hi = max(begin, start), min(end, stop)
    return (hi - lo).total_seconds() if lo < hi else None


def _share(usage: JobUsage, seconds: float, now: datetime) -> float:
    whole = (_end(usage, now) - usage.admitted_at).total_seconds()
    return 1.0 if whole <= 0 else seconds / whole


def _days(start: datetime, stop: datetime) -> Iterator[tuple[datetime, datetime]]:
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < stop:
        lo, hi = max(day, start), min(day + DAY, stop)
        if lo < hi:
            yield lo, hi
        day += DAY


def _by_day(
    usage: JobUsage, start: datetime, stop: datetime, now: datetime
) -> Iterator[tuple[str, float]]:
    begin, end = usage.admitted_at, _end(usage, now)
    if begin == end:
        if start <= begin < stop:
            yield begin.astimezone(UTC).date().isoformat(), 0.0
        return
    for lo, hi in _days(max(begin, start), min(end, stop)):
        yield lo.astimezone(UTC).date().isoformat(), (hi - lo).total_seconds()


class _Sum:
    __slots__ = ("accelerator", "cost", "gpu_seconds", "jobs")

    def __init__(self) -> None:
        self.jobs: set[str] = set()
        self.gpu_seconds = 0.0
        self.accelerator: float | None = None
        self.cost: float | None = None

    def add(self, usage: JobUsage, seconds: float, share: float) -> None:
        self.jobs.add(usage.job_id)
        self.gpu_seconds += usage.gpu_count * seconds
        if usage.accelerator_seconds is not None:
            self.accelerator = (self.accelerator or 0.0) + usage.accelerator_seconds * share
        if usage.estimated_cost is not None:
            self.cost = (self.cost or 0.0) + usage.estimated_cost * share


def summarize(
    rows: Iterable[JobUsage],
    *,
    start: datetime,
    stop: datetime,
    now: datetime,
    group: Group,
) -> list[UsageRow]:
    """`GET /usage`: usage inside [start, stop) by user email, kind or UTC day, sorted by
    group. `jobs` counts the jobs that ran at some point of the group's window."""
    sums: dict[str, _Sum] = {}
    for usage in rows:
        if group == "day":
            for key, seconds in _by_day(usage, start, stop, now):
                sums.setdefault(key, _Sum()).add(usage, seconds, _share(usage, seconds, now))
            continue
        inside = _overlap(usage, start, stop, now)
        if inside is None:
            continue
        key = usage.user_email if group == "user" else usage.kind
        sums.setdefault(key, _Sum()).add(usage, inside, _share(usage, inside, now))
    return [
        UsageRow(
            group=key,
            jobs=len(s.jobs),
            gpu_seconds=s.gpu_seconds,
            accelerator_seconds=s.accelerator,
            estimated_cost=s.cost,
        )
        for key, s in sorted(sums.items())
    ]


def hourly(
    rows: Iterable[JobUsage], *, start: datetime, stop: datetime, now: datetime
) -> list[HourBucket]:
    """GPU time per UTC hour from the hour holding `start` up to `stop`: what a chart of
    GPUs in use over time plots (`gpus` = gpu_seconds / 3600, the hour's average)."""
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    count = max(0, int((stop - first) / HOUR) + (1 if (stop - first) % HOUR else 0))
    seconds = [0.0] * count
    for usage in rows:
        lo, hi = max(usage.admitted_at, first), min(_end(usage, now), stop)
        if lo >= hi:
            continue
        index = int((lo - first) / HOUR)
        while index < count:
            bucket = first + index * HOUR
            piece = (min(hi, bucket + HOUR) - max(lo, bucket)).total_seconds()
            if piece <= 0:
                break
            seconds[index] += usage.gpu_count * piece
            index += 1
    return [
        HourBucket(hour=first + i * HOUR, gpu_seconds=value, gpus=value / 3600)
        for i, value in enumerate(seconds)
    ]
