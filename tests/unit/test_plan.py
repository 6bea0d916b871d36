"""The admission planner: given a queue, load and headroom, when planned, then who is admitted
and why the others wait. Plus Hypothesis: random workloads keep cap, budget and FIFO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from service.admission.plan import PAUSED_REASON, Load, QueuedJob, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(n: int, user: str, gpus: int) -> QueuedJob:
    return QueuedJob(f"j{n:03d}", user, T0 + timedelta(seconds=n), gpus)


def load(progress: dict[str, int] | None = None, caps: dict[str, int] | None = None) -> Load:
    return Load(progress=progress or {}, caps=caps or {}, default_cap=1)


def test_given_free_gpus_when_planned_then_fifo_within_budget() -> None:
    queue = [job(1, "a", 4), job(2, "b", 2), job(3, "c", 4)]
    result = plan(queue, load(), 7)
    assert [a.job.job_id for a in result.admit] == ["j001", "j002"]
    assert [a.available_before for a in result.admit] == [7, 3]
    assert [(p.job.job_id, p.queue_position, p.reason) for p in result.pending] == [
        ("j003", 3, "needs 4 GPUs, 1 free")
    ]
    assert result.available_after == 1


def test_given_a_big_job_first_when_strict_then_nothing_behind_it() -> None:
    queue = [job(1, "a", 8), job(2, "b", 1)]
    result = plan(queue, load(), 4)
    assert result.admit == []
    assert [p.reason for p in result.pending] == ["needs 8 GPUs, 4 free", "behind job j001"]


def test_given_a_big_job_first_when_backfill_then_the_small_one_goes() -> None:
    result = plan([job(1, "a", 8), job(2, "b", 1)], load(), 4, policy="backfill")
    assert [a.job.job_id for a in result.admit] == ["j002"]
    assert [(p.job.job_id, p.queue_position) for p in result.pending] == [("j001", 2)]


def test_given_users_at_cap_when_planned_then_they_wait_last_with_a_reason() -> None:
    queue = [job(1, "a", 1), job(2, "a", 1), job(3, "b", 1), job(4, "c", 1)]
    result = plan(queue, load({"c": 1}, {"c": 1}), 8)
    assert [a.job.job_id for a in result.admit] == ["j001", "j003"]
    assert [(p.job.job_id, p.queue_position, p.reason) for p in result.pending] == [
        ("j002", 3, "your earlier queued job goes first (cap 1)"),
        ("j004", 4, "you already have a job in PROGRESS"),
    ]


def test_given_cap_zero_when_planned_then_admissions_are_off_for_that_user() -> None:
    result = plan([job(1, "a", 1)], load(caps={"a": 0}), 8)
    assert result.admit == [] and "cap is 0" in result.pending[0].reason


def test_given_paused_when_planned_then_nothing_is_admitted() -> None:
    result = plan([job(1, "a", 1), job(2, "b", 1)], load(), 8, paused=True)
    assert result.admit == []
    assert [p.reason for p in result.pending] == [PAUSED_REASON, PAUSED_REASON]


def test_explain_false_admits_the_same_jobs() -> None:
    queue = [job(n, f"u{n % 3}", 1 + n % 4) for n in range(30)]
    full = plan(queue, load(), 12)
    fast = plan(queue, load(), 12, explain=False)
    assert fast.admit == full.admit and fast.pending == []


workloads = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 8)), max_size=25
)


@settings(max_examples=300, deadline=None)
@given(
    jobs=workloads,
    available=st.integers(0, 24),
    caps=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 3)),
    progress=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 3)),
    policy=st.sampled_from(["strict-fifo", "backfill"]),
    explain=st.booleans(),
)
def test_random_workloads_keep_cap_budget_and_fifo(
    jobs: list[tuple[str, int]],
    available: int,
    caps: dict[str, int],
    progress: dict[str, int],
    policy: str,
    explain: bool,
) -> None:
    queue = sorted(
        (job(n, user, gpus) for n, (user, gpus) in enumerate(jobs)),
        key=lambda j: (j.created_at, j.job_id),
    )
    current = Load(progress=progress, caps=caps, default_cap=1)
    result = plan(queue, current, available, policy=policy, explain=explain)
    admitted = [a.job for a in result.admit]
    # budget
    assert sum(j.gpu_count for j in admitted) <= available
    assert result.available_after == available - sum(j.gpu_count for j in admitted)
    # cap
    for user in {j.user_id for j in admitted}:
        count = progress.get(user, 0) + sum(1 for j in admitted if j.user_id == user)
        assert count <= current.cap_of(user)
    # FIFO: admitted in queue order; under strict-fifo, every eligible job ahead of an
    # admitted one was admitted too
    order = {j.job_id: i for i, j in enumerate(queue)}
    assert [order[j.job_id] for j in admitted] == sorted(order[j.job_id] for j in admitted)
    if policy == "strict-fifo" and admitted:
        last = order[admitted[-1].job_id]
        slots = dict(progress)
        ids = {j.job_id for j in admitted}
        for j in queue[: last + 1]:
            if slots.get(j.user_id, 0) < current.cap_of(j.user_id):
                assert j.job_id in ids
                slots[j.user_id] = slots.get(j.user_id, 0) + 1
    if explain:
        assert len(result.admit) + len(result.pending) == len(queue)
        positions = [p.queue_position for p in result.pending]
        assert positions == list(range(len(admitted) + 1, len(queue) + 1))
