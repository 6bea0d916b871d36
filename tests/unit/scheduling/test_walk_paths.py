"""Hypothesis: the pass's walk (events.domain.scheduling.walk, settle, freeze) and the
fair-share order without a key per job (fair_order) decide exactly what stepping each job
of the reference order does.

The walk memoizes reasons by the job's figures, drops them per GPU type and slot, and stops
at a frozen pass (its tail explained on read from a copy of the pass); `FREEZE_AFTER` is set
to 1-3 here so that short queues reach the freeze checks. Every admission, reason,
position, reservation and budget must agree with `Pass.step` over `reference_order`, with
and without explanations (without: stepping until the pass is exhausted), for estimates the
walk can memoize by the job's figures (`by_shape`) and for one it cannot; a job stepped
after the plan must be placed as after the reference; and a long queue (the default
`FREEZE_AFTER`) must agree too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from events.domain.scheduling import (
    POLICIES,
    Admission,
    Job,
    Limits,
    Pass,
    Pending,
    Policy,
    Running,
    RuntimeEstimator,
    constant_estimate,
    pending_placements,
    plan,
)
from events.domain.scheduling import walk as walk_module
from events.domain.scheduling.fair_order import fair_order
from events.domain.scheduling.order import policy_order
from tests.unit.scheduling.helpers import T0
from tests.unit.scheduling.test_fast_paths import reference_key, reference_order
from tests.unit.scheduling.test_properties import USERS, headrooms, jobs, limits, runnings, usages


@contextmanager
def freeze_after(n: int) -> Iterator[None]:
    before = walk_module.FREEZE_AFTER
    walk_module.FREEZE_AFTER = n
    try:
        yield
    finally:
        walk_module.FREEZE_AFTER = before


def estimator() -> RuntimeEstimator:
    est = RuntimeEstimator(90)
    est.observe("u0", "SFT", 8, 1800.0)
    est.observe("u2", "SFT", 1, 40000.0)
    est.observe("u1", "SFT", 2, 100.0)
    return est


def estimates(kind: str) -> Callable[[Job], float]:
    est = estimator()
    if kind == "shaped":
        return est.estimate
    if kind == "constant":
        return constant_estimate(3000)
    return lambda job: est.estimate(job) + (1.0 if job.job_id.endswith("1") else 0.0)


def stepped(
    ordered: list[Job], pass_: Pass, explain: bool
) -> tuple[list[Admission], list[Pending]]:
    """The reference: `step` each job; without `explain`, until the pass is exhausted."""
    admit: list[Admission] = []
    pending: list[Pending] = []
    for job in ordered:
        entry = pass_.step(job)
        if isinstance(entry, Admission):
            admit.append(entry)
        elif explain:
            pending.append(entry)
        elif pass_.exhausted():
            break
    return admit, pending


@st.composite
def few_users(draw: st.DrawFn) -> list[Job]:
    """Two users, small jobs, both types: slots fill up and reservations leave spare GPUs
    within a few jobs."""
    return [
        Job(f"j{i:03d}", draw(st.sampled_from(["u0", "u1"])), T0 - timedelta(minutes=30 - i),
            draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from(["h200", "b200"])))
        for i in range(draw(st.integers(0, 14)))
    ]  # fmt: skip


def same_priority(queue: list[Job], priority: int) -> list[Job]:
    return [
        Job(j.job_id, j.user_id, j.created_at, j.gpu_count, j.gpu_type, j.kind, priority)
        for j in queue
    ]


def check(
    queue: list[Job],
    run: list[Running],
    free: dict[str, int],
    lim: Limits,
    policy: Policy,
    usage: dict[str, float],
    estimate: Callable[[Job], float],
) -> None:
    ordered = reference_order(queue, policy, T0, usage)
    for explain in (True, False):
        done = plan(queue, run, free, lim, policy, T0, estimate=estimate, usage=usage,
                    explain=explain)  # fmt: skip
        ref = Pass(run, free, lim, policy, T0, estimate=estimate, usage=usage)
        admit, pending = stepped(ordered, ref, explain)
        assert done.admit == admit
        assert done.pending == pending
        assert list(done.pending) == pending and len(done.pending) == len(pending)
        assert done.order == ([j.job_id for j in ordered] if explain else [])
        assert done.reservations == ref.reservations
        assert done.available_after == ref.budget
    # a job placed after the plan (the pass stepped on): as after the reference
    pass_ = Pass(run, free, lim, policy, T0, estimate=estimate, usage=usage)
    fair = fair_order(queue, policy, T0, usage) if policy.name == "fair-share" else None
    mine = pass_.plan(fair.jobs if fair else policy_order(queue, policy, T0, usage), fair=fair)
    ref = Pass(run, free, lim, policy, T0, estimate=estimate, usage=usage)
    _, pending = stepped(ordered, ref, True)
    later = [Job(f"x{u}", u, T0 + timedelta(days=1), g) for u in (USERS[0], "new") for g in (1, 8)]
    assert [pass_.step(j) for j in later] == [ref.step(j) for j in later]
    placed = [(p.job.job_id, (p.queue_position, p.reason)) for p in pending]
    assert list(pending_placements(mine.pending)) == placed  # read after those steps: as
    assert list(mine.pending) == pending  # planned (the placements first: no Pending built)
    assert list(pending_placements(pending)) == placed
    # the views' way: a plan of the policy's order, without the fair order's counts
    views = Pass(run, free, lim, policy, T0, estimate=estimate, usage=usage)
    again = views.plan(policy_order(queue, policy, T0, usage))
    assert again.admit == mine.admit and again.pending == list(mine.pending)


@settings(max_examples=600, deadline=None)
@given(
    limits(),
    st.one_of(jobs(), few_users()),
    runnings(),
    st.one_of(headrooms, st.fixed_dictionaries({"h200": st.integers(0, 12)})),
    st.sampled_from(POLICIES),
    usages,
    st.sampled_from(["shaped", "constant", "per job"]),
    st.sampled_from([None, 50, 0]),
    st.sampled_from([1, 2, 3]),
    st.sampled_from([(0.0, 0.0), (6.0, 24.0), (7.5, 72.0)]),
    st.booleans(),
)
def test_the_walk_equals_stepping_the_reference_order(
    lim: Limits,
    queue: list[Job],
    run: list[Running],
    free: dict[str, int],
    name: str,
    usage: dict[str, float],
    estimate: str,
    priority: int | None,
    after: int,
    hours: tuple[float, float],
    paused: bool,
) -> None:
    aging, max_wait = hours
    policy = Policy(name, aging_hours=aging, max_wait_hours=max_wait, weights={"u1": 0.5})  # type: ignore[arg-type]
    queue = [  # and jobs exactly at the overdue and aging boundaries
        *queue,
        Job("jlate", "u3", T0 - timedelta(hours=max_wait), 2),
        Job("jaged", "u4", T0 - timedelta(hours=aging * 2), 1),
    ]
    if priority is not None:  # one priority: the fair order's stretches, no key per job
        queue = same_priority(queue, priority)
    with freeze_after(after):
        check(queue, run, free, lim, policy, usage, estimates(estimate))
    if paused:
        done = plan(queue, run, free, lim, policy, T0, paused=True)
        ref = Pass(run, free, lim, policy, T0, paused=True)
        assert done.pending == stepped(reference_order(queue, policy, T0, {}), ref, True)[1]


def test_a_long_queue_equals_stepping_it() -> None:
    """The default `FREEZE_AFTER`: 6000 jobs of 600 users, half of them at their cap."""
    users = [f"user{u}" for u in range(600)]
    queue = [
        Job(f"j{i:05d}", users[i % 600], T0 + timedelta(milliseconds=i), 1 + i % 8,
            "h200" if i % 5 else "b200")
        for i in range(6000)
    ]  # fmt: skip
    run = [
        Running(f"r{n}", u, 1, T0, T0 + timedelta(minutes=1 + n % 240), "h200")
        for n, u in enumerate(users[:300])
    ]
    usage = {r.user_id: float(n) for n, r in enumerate(run)}
    lim = Limits(big_job_gpus=8, cap_small=1, cap_big=1, big_job_reserve=4)
    for name in POLICIES:
        policy = Policy(name)
        for estimate in ("shaped", "per job"):
            check(queue, run, {"h200": 64, "b200": 16}, lim, policy, usage, estimates(estimate))


def test_the_fair_order_and_its_counts_equal_the_keyed_ones() -> None:
    """`fair_order`'s stretches (one priority) against sorting `reference_key`."""
    queue = [
        Job(f"j{i}", f"u{i % 7}", T0 - timedelta(hours=i % 13 * 3, seconds=i), 1)
        for i in range(200)
    ]
    usage = {f"u{u}": float(u % 3) for u in range(7)}
    for aging, max_wait in ((6.0, 24.0), (0.0, 30.0), (5.0, 0.0)):
        policy = Policy("fair-share", aging_hours=aging, max_wait_hours=max_wait)
        got = fair_order(queue, policy, T0, usage)
        ordered = reference_order(queue, policy, T0, usage)
        assert got.jobs == ordered
        keys = [reference_key(j, policy, T0, usage) for j in ordered]
        for n, key in enumerate(keys):
            band = [k for k in keys[:n] if k[:2] == key[:2]]
            ahead = len([k for k in band if k[2] < key[2]]) if key[1] else 0
            assert got.aheads[n] == ahead


def j(n: int, user: str, gpus: int, gpu_type: str = "h200") -> Job:
    return Job(f"j{n}", user, T0 - timedelta(minutes=100 - n), gpus, gpu_type)


CASES = {
    # a job of a user whose slot fills up later (an h200 admission): its next b200 job is
    # held by the cap, no longer by the GPUs (the memo's entries per slot)
    "slot": (
        [j(1, "a", 8, "b200"), j(2, "a", 1), j(3, "a", 8, "b200"), j(4, "b", 8, "b200")],
        [],
        {"h200": 4, "b200": 4},
        "backfill",
        7200.0,
    ),
    # reserve: a job that fits in the reservation's spare GPUs after a run of held jobs
    "spare": (
        [j(1, "a", 4), j(2, "a", 2), j(3, "a", 2), j(4, "b", 2), j(5, "b", 2)],
        [Running("r", "z", 4, T0, T0 + timedelta(hours=1))],
        {"h200": 2},
        "reserve",
        7200.0,
    ),
    # reserve: one that ends before the reservation (a short estimate)
    "ends before": (
        [j(1, "a", 8), j(2, "a", 1), j(3, "a", 1), j(4, "b", 2), j(5, "c", 2)],
        [Running("r", "z", 4, T0, T0 + timedelta(hours=1))],
        {"h200": 4},
        "reserve",
        600.0,
    ),
    # strict: a type with no headroom given stops at its first job, the next waits behind
    "no headroom": (
        [j(1, "a", 8), j(2, "a", 1), j(3, "a", 1), j(4, "b", 1, "b200"), j(5, "c", 1, "b200")],
        [],
        {"h200": 4},
        "strict-fifo",
        7200.0,
    ),
}


def test_the_walk_keeps_what_a_frozen_pass_must_not_miss() -> None:
    for name, (queue, run, free, policy, seconds) in CASES.items():
        lim = Limits(cap_small=1)
        estimate = constant_estimate(seconds)
        with freeze_after(1):
            done = plan(queue, run, free, lim, Policy(policy), T0, estimate=estimate)  # type: ignore[arg-type]
        ref = Pass(run, free, lim, Policy(policy), T0, estimate=estimate)  # type: ignore[arg-type]
        admit, pending = stepped(sorted(queue, key=lambda job: job.created_at), ref, True)
        assert (done.admit, list(done.pending)) == (admit, pending), name


def test_a_frozen_tail_reads_as_planned_after_the_pass_steps_on() -> None:
    """The tail is explained from a copy of the pass: a job placed after the plan (admitted:
    it ends before the reservation) changes neither the GPUs free nor the slots it reads."""
    run = [Running("r", "z", 4, T0, T0 + timedelta(hours=1))]
    queue = [j(1, "a", 8), j(2, "a", 1), j(3, "b", 2), j(4, "c", 8)]
    lim, policy = Limits(cap_small=1), Policy("reserve")
    with freeze_after(1):
        pass_ = Pass(run, {"h200": 4}, lim, policy, T0, estimate=constant_estimate(7200))
        done = pass_.plan(policy_order(queue, policy, T0, {}))
    later = Job("x", "c", T0, 1, max_runtime_minutes=10)
    assert isinstance(pass_.step(later), Admission)
    ref = Pass(run, {"h200": 4}, lim, policy, T0, estimate=constant_estimate(7200))
    assert list(done.pending) == stepped(queue, ref, True)[1]
    assert done.pending[-1].reason.startswith("needs 8 GPUs, 4 free; waiting")
