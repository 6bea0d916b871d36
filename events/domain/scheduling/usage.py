"""Decayed GPU usage per user, for fair share: GPU-seconds of admitted jobs (running ones
included), each second's weight halving every `half_life_hours` after it was used.

A job that ran from s to e on g GPUs contributes, at time t >= e,
g · H/ln 2 · (2^-(t-e)/H - 2^-(t-s)/H) (H the half-life in seconds), and a running job the
same with e = t. Finished jobs are folded into one value per user at a reference time and
decayed from there, so reading everyone's usage costs O(users + running jobs)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime

from events.domain.scheduling.model import Running


class UsageLedger:
    def __init__(self, half_life_hours: float, epoch: datetime) -> None:
        self.half_life_s = half_life_hours * 3600.0
        self.epoch = epoch  # reference time of the folded values
        self._folded: dict[str, float] = {}  # usage as of `epoch` of finished jobs

    def _area(self, gpus: int, start_s: float, end_s: float, at_s: float) -> float:
        """Decayed GPU-seconds at `at_s` of `gpus` used from `start_s` to `end_s`."""
        h = self.half_life_s
        if end_s <= start_s:
            return 0.0
        if h <= 0:
            return gpus * (end_s - start_s)
        k = math.log(2) / h
        return gpus / k * (math.exp(-k * (at_s - end_s)) - math.exp(-k * (at_s - start_s)))

    def finish(self, user_id: str, gpus: int, started_at: datetime, ended_at: datetime) -> None:
        """Fold a finished job's usage in (as of the ledger's epoch; ends may lie after it)."""
        s = (started_at - self.epoch).total_seconds()
        e = (ended_at - self.epoch).total_seconds()
        self._folded[user_id] = self._folded.get(user_id, 0.0) + self._area(gpus, s, e, 0.0)

    def rebase(self, epoch: datetime) -> None:
        """Move the reference time to `epoch` (same figures): keeps the exponentials in
        range however long the ledger lives (they overflow ~1,000 half-lives out)."""
        if self.half_life_s > 0:
            shift = (epoch - self.epoch).total_seconds() / self.half_life_s
            self._folded = {u: v * 2.0**-shift for u, v in self._folded.items()}
        self.epoch = epoch

    def at(self, now: datetime, running: Iterable[Running] = ()) -> dict[str, float]:
        """Every user's decayed usage at `now`, running jobs counted up to `now`."""
        t = (now - self.epoch).total_seconds()
        factor = 1.0 if self.half_life_s <= 0 else 2.0 ** (-t / self.half_life_s)
        usage = {user: value * factor for user, value in self._folded.items()}
        for job in running:
            s = (job.started_at - self.epoch).total_seconds()
            area = self._area(job.gpu_count, s, max(s, t), t)
            usage[job.user_id] = usage.get(job.user_id, 0.0) + area
        return usage


def decayed_usage(
    half_life_hours: float,
    finished: Iterable[tuple[str, int, datetime, datetime]],
    running: Iterable[Running],
    now: datetime,
) -> Mapping[str, float]:
    """The same figures from scratch (the oracle the ledger is tested against)."""
    ledger = UsageLedger(half_life_hours, now)
    for user_id, gpus, start, end in finished:
        ledger.finish(user_id, gpus, start, end)
    return ledger.at(now, running)
