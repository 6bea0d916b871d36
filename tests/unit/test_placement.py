"""Placing a just-submitted job with one more step of the pass that planned the queue before
it (`Pass.step`, which `PlanSnapshot.place_new` uses) gives exactly what planning the queue
with the job appended gives for that job, under every FIFO-ordered policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from events.domain.scheduling import POLICIES, Job, Limits, Pass, Policy, Running, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=2)
USERS = ["a", "b", "c", "d"]
TYPES = ["h200", "b200"]

jobs_st = st.lists(
    st.tuples(st.sampled_from(USERS), st.integers(1, 9), st.sampled_from(TYPES)), max_size=25
)


def queue_of(specs: list[tuple[str, int, str]]) -> list[Job]:
    return [
        Job(f"j{n:03d}", user, T0 + timedelta(seconds=n), gpus, gpu_type)
        for n, (user, gpus, gpu_type) in enumerate(specs)
    ]


@settings(max_examples=300, deadline=None)
@given(
    specs=jobs_st,
    new=st.lists(
        st.tuples(st.sampled_from(USERS), st.integers(1, 9), st.sampled_from(TYPES)),
        min_size=1,
        max_size=4,
    ),
    running=st.lists(st.tuples(st.sampled_from(USERS), st.integers(1, 4)), max_size=4),
    cap=st.one_of(st.none(), st.integers(0, 3)),
    big=st.sampled_from([0, 4, 8]),
    reserve=st.integers(0, 3),
    headroom=st.fixed_dictionaries({"h200": st.integers(0, 12), "b200": st.integers(0, 8)}),
    policy=st.sampled_from([p for p in POLICIES if p != "fair-share"]),
    paused=st.booleans(),
)
def test_one_more_step_equals_planning_with_the_job_appended(
    specs: list[tuple[str, int, str]],
    new: list[tuple[str, int, str]],
    running: list[tuple[str, int]],
    cap: int | None,
    big: int,
    reserve: int,
    headroom: dict[str, int],
    policy: str,
    paused: bool,
) -> None:
    queue = queue_of(specs)
    limits = Limits(big_job_gpus=big, cap_small=cap, cap_big=1, big_job_reserve=reserve)
    pol = Policy(policy)  # type: ignore[arg-type]
    run = [
        Running(f"r{n}", user, gpus, T0, NOW + timedelta(minutes=10 * (n + 1)))
        for n, (user, gpus) in enumerate(running)
    ]
    pass_ = Pass(run, headroom, limits, pol, NOW, paused=paused)
    pass_.plan(queue)
    # Several submits in a row: each is placed from the state the previous one left.
    for n, (user, gpus, gpu_type) in enumerate(new):
        job = Job(f"j9{n:02d}", user, T0 + timedelta(days=1, seconds=n), gpus, gpu_type)
        queue = [*queue, job]
        after = plan(queue, run, headroom, limits, pol, NOW, paused=paused)
        expected = [e for e in [*after.admit, *after.pending] if e.job == job]
        assert [pass_.step(job)] == expected


def test_a_new_job_behind_a_blocker_and_a_capped_one_keep_their_rank() -> None:
    queue = queue_of([("a", 8, "h200"), ("a", 1, "h200"), ("b", 1, "h200")])
    d_runs = [Running("r0", "d", 1, T0, NOW + timedelta(hours=1))]
    pass_ = Pass(d_runs, {"h200": 4}, Limits(), Policy(), NOW)
    pass_.plan(queue)
    placed = pass_.step(Job("j999", "c", T0 + timedelta(days=1), 1))
    # j000 blocks (strict); the new job is 4th in FIFO order, waiting behind j000
    assert (placed.queue_position, getattr(placed, "reason", None)) == (4, "behind job j000")
    capped = pass_.step(Job("j998", "d", T0 + timedelta(days=1), 1))
    # d's job in PROGRESS holds d's slot: rank 5 all the same (not moved behind anything)
    assert capped.queue_position == 5
    assert getattr(capped, "reason", None) == "you already have a job in PROGRESS"
