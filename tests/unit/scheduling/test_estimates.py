"""Runtime estimates and decayed usage: pure functions of the history."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from events.domain.scheduling import Running, RuntimeEstimator, UsageLedger, decayed_usage
from tests.unit.scheduling.helpers import T0, job


def test_estimate_falls_back_from_user_to_everyone_to_default() -> None:
    est = RuntimeEstimator(default_minutes=120)
    assert est.estimate(job(1, "a", 4)) == 7200
    est.observe("b", "SFT", 4, 600)
    est.observe("b", "SFT", 4, 1000)
    assert est.estimate(job(1, "a", 4)) == 800  # all users' median
    est.observe("a", "SFT", 4, 100)
    assert est.estimate(job(1, "a", 4)) == 100  # the user's own
    assert est.estimate(job(1, "a", 8)) == 7200  # other gpu_count: default
    assert est.estimate(job(1, "a", 4, kind="DPO")) == 7200  # other kind: default
    assert est.estimate(job(1, "b", 4, max_runtime_minutes=5)) == 300  # capped


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50), st.randoms())
def test_estimate_is_the_median_whatever_the_order(values: list[float], rnd: object) -> None:
    est = RuntimeEstimator()
    shuffled = list(values)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for v in shuffled:
        est.observe("a", "SFT", 1, v)
    s = sorted(values)
    n = len(s)
    expected = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    assert est.typical("a", "SFT", 1) == expected


def test_usage_halves_every_half_life() -> None:
    ledger = UsageLedger(1.0, T0)
    ledger.finish("a", 2, T0, T0 + timedelta(seconds=1))
    now = ledger.at(T0 + timedelta(seconds=1))["a"]
    later = ledger.at(T0 + timedelta(hours=1, seconds=1))["a"]
    assert abs(now - 2.0) < 1e-3
    assert abs(later - now / 2) < 1e-6


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(1, 8),
            st.integers(0, 10**6),
            st.integers(0, 10**5),
        ),
        max_size=20,
    ),
    st.floats(0.5, 500),
)
def test_ledger_equals_usage_from_scratch(
    jobs: list[tuple[str, int, int, int]], half_life: float
) -> None:
    finished = [
        (u, g, T0 + timedelta(seconds=s), T0 + timedelta(seconds=s + d)) for u, g, s, d in jobs
    ]
    now = T0 + timedelta(seconds=2 * 10**6)
    run = [Running("r", "a", 4, T0 + timedelta(seconds=10**6), now)]
    ledger = UsageLedger(half_life, T0)
    for f in finished:
        ledger.finish(*f)
    got = ledger.at(now, run)
    want = decayed_usage(half_life, finished, run, now)
    for user in set(got) | set(want):
        assert abs(got.get(user, 0) - want.get(user, 0)) <= 1e-6 * max(1.0, want.get(user, 0))
