"""The CLI's words for a queued job's ETA (`ftq queue`, `ftq watch`)."""

from __future__ import annotations

from datetime import UTC, datetime

from service.cli.eta_text import eta_words
from service.cli.watch import Status

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_eta_words() -> None:
    assert eta_words("2026-12-03T09:20:00Z", NOW) == "2026-12-03 09:20 UTC (in 1h 20m)"
    assert eta_words("2026-12-03T08:00:10+00:00", NOW) == "2026-12-03 08:00 UTC (now)"
    assert eta_words("2026-12-05T10:00:00Z", NOW) == "2026-12-05 10:00 UTC (in 2d 2h)"
    assert eta_words(None, NOW) == "" and eta_words("soon", NOW) == "soon"


def test_watch_shows_the_eta_of_a_queued_job_only() -> None:
    status = Status("j")
    status.placed({"state": "QUEUED", "queue_position": 2, "pending_reason": "behind job x",
                   "eta": "2030-01-01T00:00:00Z"})  # fmt: skip
    assert "position 2: behind job x" in status.words()
    assert "(ETA 2030-01-01 00:00 UTC" in status.words()
    status.apply("job.admission_started", {})
    assert "ETA" not in status.words()
