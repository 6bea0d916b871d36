"""GPU-hour accounting (events.domain.usage): windows, day splits, hourly buckets, sharing
Fireworks' own figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.domain.usage import JobUsage, hourly, summarize

T0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
H = timedelta(hours=1)


def job(
    n: int,
    start: datetime,
    end: datetime | None,
    gpus: int = 2,
    email: str = "a@x.io",
    kind: str = "SFT",
    **more: float,
) -> JobUsage:
    return JobUsage(
        job_id=f"00000000-0000-0000-0000-{n:012d}",
        user_id="u",
        user_email=email,
        kind=kind,
        gpu_count=gpus,
        admitted_at=start,
        completed_at=end,
        **more,  # type: ignore[arg-type]
    )


EVER = datetime(1970, 1, 1, tzinfo=UTC)
LATER = T0 + 100 * H


def test_gpu_seconds_are_gpu_count_times_admitted_to_terminal() -> None:
    rows = [job(1, T0, T0 + 2 * H, gpus=4), job(2, T0, T0 + H, gpus=1, email="b@x.io")]
    got = summarize(rows, start=EVER, stop=LATER, now=LATER, group="user")
    assert [(r.group, r.jobs, r.gpu_seconds) for r in got] == [
        ("a@x.io", 1, 4 * 7200.0),
        ("b@x.io", 1, 3600.0),
    ]
    assert got[0].accelerator_seconds is None and got[0].estimated_cost is None


def test_a_running_job_counts_up_to_now_and_the_window_clips() -> None:
    rows = [job(1, T0, None, gpus=2)]
    got = summarize(rows, start=T0 + H, stop=LATER, now=T0 + 3 * H, group="kind")
    assert [(r.group, r.gpu_seconds) for r in got] == [("SFT", 2 * 2 * 3600.0)]
    assert summarize(rows, start=T0 + 4 * H, stop=LATER, now=T0 + 3 * H, group="kind") == []


def test_day_grouping_splits_a_job_across_utc_days_and_shares_fireworks_figures() -> None:
    # 22:00 -> 02:00 next day: 2 hours on each day.
    rows = [job(1, T0, T0 + 4 * H, gpus=1, accelerator_seconds=8000.0, estimated_cost=8.0)]
    got = summarize(rows, start=EVER, stop=LATER, now=LATER, group="day")
    assert [(r.group, r.jobs, r.gpu_seconds) for r in got] == [
        ("2026-03-01", 1, 7200.0),
        ("2026-03-02", 1, 7200.0),
    ]
    assert [r.accelerator_seconds for r in got] == [4000.0, 4000.0]
    assert [r.estimated_cost for r in got] == [4.0, 4.0]


def test_a_job_that_ended_when_admitted_is_one_job_with_no_gpu_time() -> None:
    rows = [job(1, T0, T0, estimated_cost=1.5)]
    got = summarize(rows, start=EVER, stop=LATER, now=LATER, group="day")
    assert [(r.group, r.jobs, r.gpu_seconds, r.estimated_cost) for r in got] == [
        ("2026-03-01", 1, 0.0, 1.5)
    ]


def test_hourly_buckets_give_gpus_in_use_over_time() -> None:
    rows = [job(1, T0 + H / 2, T0 + 2 * H, gpus=4), job(2, T0, None, gpus=2)]
    got = hourly(rows, start=T0, stop=T0 + 3 * H, now=T0 + 2.5 * H)
    assert [b.hour for b in got] == [T0, T0 + H, T0 + 2 * H]
    assert [b.gpus for b in got] == [2 + 2, 4 + 2, 1]
    assert sum(b.gpu_seconds for b in got) == sum(
        r.gpu_seconds
        for r in summarize(rows, start=T0, stop=T0 + 3 * H, now=T0 + 2.5 * H, group="user")
    )


def test_a_job_ending_where_the_window_starts_is_not_in_it() -> None:
    rows = [job(1, T0, T0 + H)]
    for group in ("user", "kind", "day"):
        assert summarize(rows, start=T0 + H, stop=LATER, now=LATER, group=group) == []  # type: ignore[arg-type]
