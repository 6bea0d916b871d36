"""Hypothesis: random queues, loads and headrooms through every policy keep the caps, class
caps, big-job reserve and per-type budget; every admission passes the audit; and
`strict-fifo` with classes equals an independent re-implementation of the old loop."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from events.domain.scheduling import (
    POLICIES,
    Job,
    Limits,
    Policy,
    Running,
    check_admission,
    constant_estimate,
    plan,
)
from tests.unit.scheduling.helpers import T0

USERS = ["u0", "u1", "u2", "u3", "u4"]
TYPES = ["h200", "b200"]
caps = st.one_of(st.none(), st.integers(0, 3))


@st.composite
def limits(draw: st.DrawFn) -> Limits:
    big = draw(st.sampled_from([0, 8]))
    overrides = draw(
        st.dictionaries(
            st.tuples(st.sampled_from(USERS), st.sampled_from(["small", "big"])), caps, max_size=3
        )
    )
    return Limits(big, draw(caps), draw(caps), draw(st.integers(0, 6)), overrides)


@st.composite
def jobs(draw: st.DrawFn, types: list[str] = TYPES) -> list[Job]:
    n = draw(st.integers(0, 25))
    out = []
    for i in range(n):
        out.append(
            Job(
                f"j{i:03d}",
                draw(st.sampled_from(USERS)),
                T0 - timedelta(hours=draw(st.integers(0, 100)), seconds=i),
                draw(st.sampled_from([1, 2, 4, 8, 16])),
                draw(st.sampled_from(types)),
                priority=draw(st.sampled_from([50, 50, 50, 0, 80])),
            )
        )
    return out


@st.composite
def runnings(draw: st.DrawFn, types: list[str] = TYPES) -> list[Running]:
    out = []
    for i in range(draw(st.integers(0, 8))):
        out.append(
            Running(
                f"r{i}",
                draw(st.sampled_from(USERS)),
                draw(st.sampled_from([1, 4, 8])),
                T0 - timedelta(hours=2),
                T0 + timedelta(minutes=draw(st.integers(-30, 600))),
                draw(st.sampled_from(types)),
            )
        )
    return out


headrooms = st.fixed_dictionaries({t: st.integers(0, 40) for t in TYPES})
usages = st.dictionaries(st.sampled_from(USERS), st.floats(0, 1e6), max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    limits(),
    jobs(),
    runnings(),
    headrooms,
    st.sampled_from(POLICIES),
    usages,
    st.integers(600, 20000),
)
def test_every_policy_keeps_the_invariants_and_passes_the_audit(
    lim: Limits,
    queue: list[Job],
    run: list[Running],
    free: dict[str, int],
    name: str,
    usage: dict[str, float],
    est_s: int,
) -> None:
    policy = Policy(name)  # type: ignore[arg-type]
    estimate = constant_estimate(est_s)
    done = plan(queue, run, free, lim, policy, T0, estimate=estimate, usage=usage)
    assert len(done.admit) + len(done.pending) == len(queue)
    positions = [a.queue_position for a in done.admit] + [p.queue_position for p in done.pending]
    assert sorted(positions) == list(range(1, len(queue) + 1))
    left = dict(free)
    load: dict[tuple[str, str], int] = {}
    for r in run:
        key = (r.user_id, lim.size_class(r.gpu_count))
        load[key] = load.get(key, 0) + 1
    remaining = list(queue)
    now_running = list(run)
    for a in done.admit:
        j = a.job
        cls = lim.size_class(j.gpu_count)
        assert a.available_before == left[j.gpu_type]  # budget of its own type
        assert j.gpu_count <= left[j.gpu_type]
        left[j.gpu_type] -= j.gpu_count
        cap = lim.cap(j.user_id, cls)
        key = (j.user_id, cls)
        assert cap is None or load.get(key, 0) < cap
        load[key] = load.get(key, 0) + 1
        assert left[j.gpu_type] >= lim.reserve_for(cls)
        assert (
            check_admission(
                a, remaining, now_running, lim, policy, T0, usage=usage, estimate=estimate
            )
            == []
        )
        remaining.remove(j)
        now_running.append(
            Running(j.job_id, j.user_id, j.gpu_count, T0, T0 + timedelta(seconds=est_s), j.gpu_type)
        )
    assert done.available_after == left


def old_loop(
    queue: list[Job],
    small: dict[str, int],
    big: dict[str, int],
    budget: int,
    big_gpus: int,
    cap_small: int,
    cap_big: int,
    reserve: int,
) -> list[str]:
    """The old service's loop, re-written from its description: walk in created_at order;
    big: at the big cap → skip; budget - gpus < reserve → skip; small: at the small cap →
    skip; then gpus > budget → stop; else admit."""
    small, big = dict(small), dict(big)
    out = []
    for j in sorted(queue, key=lambda j: (j.created_at, j.job_id)):
        is_big = j.gpu_count >= big_gpus
        if is_big:
            if big.get(j.user_id, 0) >= cap_big:
                continue
            if budget - j.gpu_count < reserve:
                continue
        elif small.get(j.user_id, 0) >= cap_small:
            continue
        if j.gpu_count > budget:
            break
        budget -= j.gpu_count
        counts = big if is_big else small
        counts[j.user_id] = counts.get(j.user_id, 0) + 1
        out.append(j.job_id)
    return out


@settings(max_examples=500, deadline=None)
@given(
    jobs(types=["h200"]),
    st.integers(0, 48),
    st.dictionaries(st.sampled_from(USERS), st.integers(0, 3)),
    st.dictionaries(st.sampled_from(USERS), st.integers(0, 2)),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(0, 6),
    st.sampled_from([4, 8, 16]),
)
def test_strict_fifo_with_classes_is_the_old_loop(
    queue: list[Job],
    budget: int,
    small: dict[str, int],
    big: dict[str, int],
    cap_small: int,
    cap_big: int,
    reserve: int,
    big_gpus: int,
) -> None:
    queue = [Job(j.job_id, j.user_id, j.created_at, j.gpu_count) for j in queue]  # priority 50
    run = [Running(f"s{u}{i}", u, 1, T0, T0) for u, n in small.items() for i in range(n)]
    run += [Running(f"b{u}{i}", u, big_gpus, T0, T0) for u, n in big.items() for i in range(n)]
    lim = Limits(big_gpus, cap_small, cap_big, reserve)
    done = plan(queue, run, {"h200": budget}, lim, Policy("strict-fifo"), T0)
    expected = old_loop(queue, small, big, budget, big_gpus, cap_small, cap_big, reserve)
    assert [a.job.job_id for a in done.admit] == expected
