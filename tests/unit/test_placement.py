"""Placing a just-submitted job from the plan of the queue before it (`place_new`) gives
exactly what planning the queue with the job appended gives for that job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from service.admission.plan import Load, QueuedJob, place_new, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)
USERS = ["a", "b", "c", "d"]

jobs_st = st.lists(st.tuples(st.sampled_from(USERS), st.integers(0, 9)), max_size=25)
counts_st = st.dictionaries(st.sampled_from(USERS), st.integers(0, 3))


def queue_of(specs: list[tuple[str, int]]) -> list[QueuedJob]:
    return [
        QueuedJob(f"j{n:03d}", user, T0 + timedelta(seconds=n), gpus)
        for n, (user, gpus) in enumerate(specs)
    ]


@settings(max_examples=400, deadline=None)
@given(
    specs=jobs_st,
    new=st.tuples(st.sampled_from(USERS), st.integers(0, 9)),
    progress=counts_st,
    caps=counts_st,
    default_cap=st.integers(0, 3),
    available=st.integers(0, 12),
    policy=st.sampled_from(["strict-fifo", "backfill"]),
    paused=st.booleans(),
)
def test_place_new_equals_planning_with_the_job_appended(
    specs: list[tuple[str, int]],
    new: tuple[str, int],
    progress: dict[str, int],
    caps: dict[str, int],
    default_cap: int,
    available: int,
    policy: str,
    paused: bool,
) -> None:
    queue = queue_of(specs)
    load = Load(progress=progress, caps=caps, default_cap=default_cap)
    done = plan(queue, load, available, policy=policy, paused=paused)
    # Several submits in a row: each is placed from the end state the previous one left.
    for n, (user, gpus) in enumerate([new, *specs[:3]]):
        job = QueuedJob(f"j9{n:02d}", user, T0 + timedelta(days=1, seconds=n), gpus)
        queue = [*queue, job]
        after = plan(queue, load, available, policy=policy, paused=paused)
        expected = [e for e in [*after.admit, *after.pending] if e.job == job]
        entry, done = place_new(done, load, job, paused=paused, policy=policy)
        assert [entry] == expected
        assert (done.available_after, done.blocker, done.waiting) == (
            after.available_after,
            after.blocker,
            after.waiting,
        )
        assert {u: n for u, n in done.slots.items() if n} == {
            u: n for u, n in after.slots.items() if n
        }


def test_place_new_behind_a_blocker_and_after_capped_jobs() -> None:
    queue = queue_of([("a", 8), ("a", 1), ("b", 1)])
    load = Load(progress={}, caps={}, default_cap=1)
    before = plan(queue, load, 4)
    placed, _ = place_new(before, load, QueuedJob("j999", "c", T0 + timedelta(days=1), 1))
    # j000 blocks; j002 waits behind it; j001 is capped (a's earlier job goes first)
    assert (placed.queue_position, getattr(placed, "reason", None)) == (3, "behind job j000")
    capped, _ = place_new(before, load, QueuedJob("j998", "a", T0 + timedelta(days=1), 1))
    assert capped.queue_position == 4
