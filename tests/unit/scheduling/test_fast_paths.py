"""Hypothesis: the pass's shortcuts decide exactly what the plain definitions do.

`plan` orders fair share by `fair_keys` (each job's wait computed once) and hands the keys to
the pass; the reference here sorts with `effective_priority`, `overdue` and `usage_key`
directly and steps each job with `Pass.step` (which computes its key itself). Every
admission, pending reason and position, the reservations and the budgets left must agree,
under every policy, with aging and overdue jobs in play; and `RuntimeEstimator.estimate`
(memoized between observations) must equal its definition after any observations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from events.domain.scheduling import (
    POLICIES,
    Job,
    Limits,
    Pass,
    Policy,
    Running,
    RuntimeEstimator,
    effective_priority,
    plan,
)
from events.domain.scheduling.order import fair_keys, overdue, usage_key
from tests.unit.scheduling.helpers import T0
from tests.unit.scheduling.test_properties import headrooms, jobs, limits, runnings, usages

Key = tuple[int, int, float, datetime, str]


def reference_key(job: Job, policy: Policy, now: datetime, usage: dict[str, float]) -> Key:
    prio = effective_priority(job, now, policy.aging_hours)
    if policy.name != "fair-share":
        return (-prio, 1, 0.0, job.created_at, job.job_id)
    late = overdue(job, now, policy.max_wait_hours)
    share = 0.0 if late else usage_key(job.user_id, usage, policy)
    return (-prio, 0 if late else 1, share, job.created_at, job.job_id)


def reference_order(
    queue: list[Job], policy: Policy, now: datetime, usage: dict[str, float]
) -> list[Job]:
    return sorted(queue, key=lambda j: reference_key(j, policy, now, usage))


@settings(max_examples=400, deadline=None)
@given(
    limits(),
    jobs(),
    runnings(),
    headrooms,
    st.sampled_from(POLICIES),
    usages,
    st.sampled_from([0.0, 6.0, 7.5]),
    st.sampled_from([0.0, 24.0, 72.0]),
    st.sampled_from([0.0, 1.0, 0.5]),
)
def test_the_keyed_pass_equals_stepping_the_reference_order(
    lim: Limits,
    queue: list[Job],
    run: list[Running],
    free: dict[str, int],
    name: str,
    usage: dict[str, float],
    aging: float,
    max_wait: float,
    weight: float,
) -> None:
    weights = {"u1": weight}
    policy = Policy(name, aging_hours=aging, max_wait_hours=max_wait, weights=weights)  # type: ignore[arg-type]
    queue = [  # and jobs exactly at the overdue and aging boundaries
        *queue,
        Job("jlate", "u3", T0 - timedelta(hours=max_wait), 2),
        Job("jaged", "u4", T0 - timedelta(hours=aging * 2), 1, priority=80),
    ]
    estimator = RuntimeEstimator(90)
    estimator.observe("u0", "SFT", 8, 1800.0)
    estimator.observe("u2", "SFT", 1, 40000.0)
    done = plan(queue, run, free, lim, policy, T0, estimate=estimator.estimate, usage=usage)
    if name == "fair-share":
        assert fair_keys(queue, policy, T0, usage) == [
            reference_key(j, policy, T0, usage) for j in queue
        ]
    ordered = reference_order(queue, policy, T0, usage)
    assert done.order == [j.job_id for j in ordered]
    pass_ = Pass(run, free, lim, policy, T0, estimate=estimator.estimate, usage=usage)
    entries = [pass_.step(j) for j in ordered]
    assert done.admit == [e for e in entries if type(e).__name__ == "Admission"]
    assert done.pending == [e for e in entries if type(e).__name__ == "Pending"]
    if name == "fair-share":  # "behind N jobs of users with less recent usage": N, by hand
        by_id = {j.job_id: reference_key(j, policy, T0, usage) for j in ordered}
        for p in done.pending:
            got = re.search(r"behind (\d+) jobs? of users with less", p.reason)
            k = by_id[p.job.job_id]
            ahead = len([
                j for j in ordered[: p.queue_position - 1]
                if by_id[j.job_id][:2] == k[:2] and k[1] == 1 and by_id[j.job_id][2] < k[2]
            ])  # fmt: skip
            assert (int(got.group(1)) if got else 0) == ahead or got is None
    assert done.reservations == pass_.reservations
    assert done.available_after == pass_.budget


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["u0", "u1"]),
            st.sampled_from(["SFT", "DPO"]),
            st.sampled_from([1, 8]),
            st.floats(0, 1e5),
        ),
        max_size=12,
    ),
    st.lists(st.integers(0, 11), max_size=8),
)
def test_memoized_estimates_follow_every_observation(
    observed: list[tuple[str, str, int, float]], reads: list[int]
) -> None:
    estimator = RuntimeEstimator(60)
    probes = [Job(f"p{n}", u, T0, g, kind=k, max_runtime_minutes=m)
              for n, (u, k, g, m) in enumerate(
                  [(u, k, g, m) for u in ("u0", "u1", "u9") for k in ("SFT", "DPO")
                   for g in (1, 8) for m in (None, 30)])]  # fmt: skip
    for n, (user, kind, gpus, seconds) in enumerate(observed):
        if n in reads:  # read (and memoize) between observations
            [estimator.estimate(p) for p in probes]
        estimator.observe(user, kind, gpus, seconds)
        for p in probes:
            expected = estimator.typical(p.user_id, p.kind, p.gpu_count)
            if p.max_runtime_minutes is not None:
                expected = min(expected, p.max_runtime_minutes * 60.0)
            assert estimator.estimate(p) == expected
