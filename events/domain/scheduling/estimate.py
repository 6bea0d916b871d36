"""Runtime estimates from observed history, kept current one finished job at a time.

For a job: the median observed runtime (admitted → terminal) of the same user's finished
jobs of the same kind and `gpu_count`, else of all users' jobs of that kind and `gpu_count`,
else the default; capped by the job's `max_runtime_minutes`."""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable

from events.domain.scheduling.model import Job

DEFAULT_RUNTIME_MINUTES = 120


def median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    if n % 2:
        return sorted_values[mid]
    return (sorted_values[mid - 1] + sorted_values[mid]) / 2.0


class RuntimeEstimator:
    """`observe` each finished job's runtime; `estimate` a job's runtime in seconds.
    A pure function of the observations (their order does not matter)."""

    def __init__(self, default_minutes: float = DEFAULT_RUNTIME_MINUTES) -> None:
        self.default_s = default_minutes * 60.0
        self._by_user: dict[tuple[str, str, int], list[float]] = {}
        self._by_kind: dict[tuple[str, int], list[float]] = {}
        # `typical` per (user, kind, gpu_count) since the last observation: a pass over a
        # long queue estimates the same few figures again and again
        self._typical: dict[tuple[str, str, int], float] = {}
        self._least_s = self.default_s  # no estimate is shorter (before max runtimes)

    def observe(self, user_id: str, kind: str, gpu_count: int, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._typical.clear()
        self._least_s = min(self._least_s, seconds)
        insort(self._by_user.setdefault((user_id, kind, gpu_count), []), seconds)
        insort(self._by_kind.setdefault((kind, gpu_count), []), seconds)

    def typical(self, user_id: str, kind: str, gpu_count: int) -> float:
        """The uncapped estimate: same user, else all users, else the default."""
        mine = self._by_user.get((user_id, kind, gpu_count))
        if mine:
            return median(mine)
        everyone = self._by_kind.get((kind, gpu_count))
        if everyone:
            return median(everyone)
        return self.default_s

    def estimate(self, job: Job) -> float:
        key = (job.user_id, job.kind, job.gpu_count)
        seconds = self._typical.get(key)
        if seconds is None:
            seconds = self._typical[key] = self.typical(*key)
        if job.max_runtime_minutes is not None:
            seconds = min(seconds, job.max_runtime_minutes * 60.0)
        return seconds

    def remaining(self, job: Job, elapsed: float, floor_s: float = 0.0) -> float:
        """The expected further runtime of `job` after `elapsed` seconds of running: the
        median of the observed runtimes longer than `elapsed` (same user, else all users),
        minus `elapsed`; else what its estimate leaves; never below `floor_s`. A job past its
        typical runtime is likely a long one, not about to end."""
        groups = (
            self._by_user.get((job.user_id, job.kind, job.gpu_count)),
            self._by_kind.get((job.kind, job.gpu_count)),
        )
        left = self.estimate(job) - elapsed
        for values in groups:
            k = bisect_right(values, elapsed) if values else 0
            if values and k < len(values):
                left = median(values[k:]) - elapsed
                break
        if job.max_runtime_minutes is not None:
            left = min(left, job.max_runtime_minutes * 60.0 - elapsed)
        return max(floor_s, left)

    __call__ = estimate

    def least(self) -> float:
        """No `typical` figure is shorter: the default, or a median of observed runtimes
        (none shorter than the shortest observed)."""
        return self._least_s


class ConstantEstimate:
    """The same estimate for every job, capped by its `max_runtime_minutes`."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, job: Job) -> float:
        if job.max_runtime_minutes is not None:
            return min(self.seconds, job.max_runtime_minutes * 60.0)
        return self.seconds


def by_shape(estimate: Callable[[Job], float]) -> bool:
    """Whether `estimate` is known to depend only on a job's user, kind, GPU count and
    `max_runtime_minutes` (a `RuntimeEstimator`'s, a `ConstantEstimate`): a pass may then
    reuse one job's estimate for the next job of the same figures."""
    if isinstance(estimate, RuntimeEstimator | ConstantEstimate):
        return type(estimate).__call__ in (RuntimeEstimator.estimate, ConstantEstimate.__call__)
    func = getattr(estimate, "__func__", None)
    return func is RuntimeEstimator.estimate and isinstance(
        getattr(estimate, "__self__", None), RuntimeEstimator
    )


def least_estimate(estimate: Callable[[Job], float]) -> float | None:
    """A figure no job's estimate is below before its `max_runtime_minutes` cap, for the
    estimates `by_shape` knows (else None)."""
    if not by_shape(estimate):
        return None
    owner = getattr(estimate, "__self__", estimate)
    if isinstance(owner, RuntimeEstimator):
        return owner.least()
    assert isinstance(owner, ConstantEstimate)
    return owner.seconds
