"""`--plot`: queue depth and GPUs in use over time per policy, and the wait-time CDF."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from events.domain.simulation import Outcome


def plot(outcomes: Mapping[str, Outcome], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - heavy; only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (depth, busy, cdf) = plt.subplots(3, 1, figsize=(10, 11))
    for name, outcome in outcomes.items():
        t0 = outcome.timeline[0].at if outcome.timeline else 0.0
        hours = [(s.at - t0) / 3600 for s in outcome.timeline]
        depth.step(hours, [s.queued for s in outcome.timeline], where="post", label=name)
        busy.step(hours, [s.gpus_busy for s in outcome.timeline], where="post", label=name)
        waits = sorted(r.wait / 3600 for r in outcome.runs)
        share = [(k + 1) / len(waits) for k in range(len(waits))]
        cdf.step(waits, share, where="post", label=name)
    depth.set(title="queue depth", xlabel="hours", ylabel="queued jobs")
    busy.set(title="GPUs in use", xlabel="hours", ylabel="GPUs")
    cdf.set(title="wait-time CDF", xlabel="wait (hours)", ylabel="share of jobs")
    for axes in (depth, busy, cdf):
        axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
