"""Placing a just-submitted job from the end state of the plan of the queue before it
(`place_last`, through `place_new` here) gives exactly what planning the queue with the job
appended gives for that job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from service.admission.plan import (
    Admission,
    Load,
    Pending,
    Plan,
    PlanEnd,
    QueuedJob,
    place_last,
    plan,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
USERS = ["a", "b", "c", "d"]

jobs_st = st.lists(st.tuples(st.sampled_from(USERS), st.integers(0, 9)), max_size=25)
counts_st = st.dictionaries(st.sampled_from(USERS), st.integers(0, 3))


def place_new(
    done: Plan, load: Load, job: QueuedJob, *, paused: bool = False, policy: str = "strict-fifo"
) -> tuple[Admission | Pending, Plan]:
    """Where `job` stands in `plan(queue + [job], load, ..., explain=True)`, given `done` =
    `plan(queue, load, ..., explain=True)` with the same arguments, without planning again;
    and the plan of that longer pass (its old entries keep their positions: only its end
    state is exact), so the next new job can be placed after this one.

    `job` must come after every job of `queue` in FIFO order (a job just submitted) and must
    not be in it. The pass over `queue + [job]` is the pass over `queue` and then one more
    step, taken from the state that pass ended in (`place_last`, which the service uses;
    this wrapper rebuilds the whole plan so the test can compare it)."""
    end = PlanEnd.of(done)
    entry = place_last(end, load, job, paused=paused, policy=policy)
    if isinstance(entry, Admission):
        admit = [*done.admit, entry]
        return entry, msgspec.structs.replace(
            done, admit=admit, available_after=end.available_after, slots=end.slots
        )
    if end.waiting == done.waiting:  # capped: appended after everything
        return entry, msgspec.structs.replace(done, pending=[*done.pending, entry])
    waiting = [*done.pending[: done.waiting], entry, *done.pending[done.waiting :]]
    return entry, msgspec.structs.replace(
        done, pending=waiting, waiting=end.waiting, blocker=end.blocker, slots=end.slots
    )


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
