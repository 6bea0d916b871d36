"""The old Supabase job-scheduler's admission rules, every scenario of its
`tests/admission.test.js`, as data through ftq's planner: with `big_job_gpus=8,
cap_small=2, cap_big=1, big_job_reserve=4` and `strict-fifo`, ftq decides what it decided.

Each case: the queue (n, user, gpus, gpu type), the user's PROGRESS jobs by class, the free
GPUs per type, and (optionally) what Fireworks answers each create; expected: the jobs
admitted in order, and for the rest whether they were skipped or stopped the pass. The
Fireworks answers are played the way the admission loop does: plan, admit the first job, on
a quota error end the pass, on another 4xx fail the job, plan again."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from events.domain.scheduling import Job, Limits, Policy, Running, plan
from tests.unit.scheduling.helpers import T0, job, running

OLD_RULES = Limits(big_job_gpus=8, cap_small=2, cap_big=1, big_job_reserve=4)
STRICT = Policy("strict-fifo")


@dataclass
class Case:
    name: str
    queue: list[tuple[int, str, int, str]]
    free: dict[str, int]
    small_active: dict[str, int] = field(default_factory=dict)
    big_active: dict[str, int] = field(default_factory=dict)
    fireworks: dict[int, str] = field(default_factory=dict)  # job n -> "quota" | "4xx"
    admitted: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)  # job n -> reason (substring)


def q(n: int, user: str, gpus: int = 4, gpu_type: str = "h200") -> tuple[int, str, int, str]:
    return (n, user, gpus, gpu_type)


CASES = [
    Case("FIFO with budget to spare", [q(1, "alice"), q(2, "bob")], {"h200": 8}, admitted=[1, 2]),
    Case(
        "three small of one user: two admitted, the third held by the small cap",
        [q(1, "praveen"), q(2, "praveen"), q(3, "praveen")],
        {"h200": 16},
        admitted=[1, 2],
        reasons={3: "your earlier queued small job goes first (cap 2)"},
    ),
    Case(
        "a small job already running counts toward the small cap",
        [q(1, "alice"), q(2, "alice")],
        {"h200": 16},
        small_active={"alice": 1},
        admitted=[1],
        reasons={2: "cap 2"},
    ),
    Case(
        "the small cap is per user: bob goes on while alice is capped",
        [q(1, "alice"), q(2, "bob")],
        {"h200": 8},
        small_active={"alice": 2},
        admitted=[2],
        reasons={1: "you already have 2 small jobs in PROGRESS (cap 2)"},
    ),
    Case(
        "two big of one user: one admitted, the second held by the big cap",
        [q(1, "alice", 8), q(2, "alice", 8)],
        {"h200": 32},
        admitted=[1],
        reasons={2: "cap 1"},
    ),
    Case(
        "a big job already running blocks the user's next big job",
        [q(1, "alice", 8)],
        {"h200": 32},
        big_active={"alice": 1},
        admitted=[],
        reasons={1: "you already have 1 big job in PROGRESS (cap 1)"},
    ),
    Case(
        "a big job that would leave less than the reserve is skipped",
        [q(1, "alice", 8)],
        {"h200": 10},
        admitted=[],
        reasons={1: "needs 8 GPUs and would leave 2 free; big jobs must leave 4"},
    ),
    Case(
        "a big job leaving exactly the reserve is admitted",
        [q(1, "alice", 8)],
        {"h200": 12},
        admitted=[1],
    ),
    Case(
        "a big job skipped by the reserve does not block a small one behind it",
        [q(1, "alice", 8), q(2, "bob", 4)],
        {"h200": 10},
        admitted=[2],
    ),
    Case(
        "budget and reserve limit how many big jobs of different users start",
        [q(1, "alice", 8), q(2, "bob", 8), q(3, "carol", 8), q(4, "dave", 8)],
        {"h200": 32},
        admitted=[1, 2, 3],
        reasons={4: "needs 8 GPUs and would leave 0 free; big jobs must leave 4"},
    ),
    Case(
        "big and small caps are separate: alice has one of each",
        [q(1, "alice", 8), q(2, "bob", 4), q(3, "alice", 4)],
        {"h200": 24},
        admitted=[1, 2, 3],
    ),
    Case("FIFO across kinds", [q(1, "alice"), q(2, "alice")], {"h200": 8}, admitted=[1, 2]),
    Case(
        "a small job that does not fit stops the pass",
        [q(1, "alice"), q(2, "bob")],
        {"h200": 2},
        admitted=[],
        reasons={1: "needs 4 GPUs, 2 free", 2: "behind job j1"},
    ),
    Case(
        "a quota error ends the pass",
        [q(1, "alice"), q(2, "bob"), q(3, "carol")],
        {"h200": 12},
        fireworks={2: "quota"},
        admitted=[1],
    ),
    Case(
        "another 4xx fails the job and the pass goes on",
        [q(1, "alice"), q(2, "bob")],
        {"h200": 8},
        fireworks={1: "4xx"},
        admitted=[2],
        failed=[1],
    ),
    Case("an empty queue admits nothing", [], {"h200": 8}, admitted=[]),
    Case(
        "a B200 job waits while the B200 quota is full, H200 room or not",
        [q(1, "alice", 4, "b200")],
        {"h200": 16, "b200": 0},
        admitted=[],
        reasons={1: "needs 4 GPUs, 0 free"},
    ),
    Case(
        "a full B200 quota does not hold back a later H200 job",
        [q(1, "alice", 4, "b200"), q(2, "bob", 4, "h200")],
        {"h200": 16, "b200": 0},
        admitted=[2],
    ),
    Case(
        "a B200 job is admitted when the B200 quota has room",
        [q(1, "alice", 4, "b200")],
        {"h200": 8, "b200": 8},
        admitted=[1],
    ),
    Case(
        "each type's budget goes down as the pass admits",
        [q(1, "alice", 4, "b200"), q(2, "bob", 4, "b200")],
        {"b200": 4, "h200": 100},
        admitted=[1],
    ),
]


def _running(case: Case) -> list[Running]:
    out: list[Running] = []
    for users, gpus in ((case.small_active, 4), (case.big_active, 8)):
        for user, count in users.items():
            out += [running(len(out) + i, user, gpus) for i in range(count)]
    return out


def play(case: Case) -> tuple[list[int], list[int], dict[int, str]]:
    """Plan, admit the first admission as Fireworks answers, plan again: the loop's way."""
    queue: list[Job] = [job(n, user, gpus, gpu_type) for n, user, gpus, gpu_type in case.queue]
    run = _running(case)
    free = dict(case.free)
    admitted: list[int] = []
    failed: list[int] = []
    first = plan(queue, run, free, OLD_RULES, STRICT, T0)
    reasons = {int(p.job.job_id[1:]): p.reason for p in first.pending}
    while True:
        done = plan(queue, run, free, OLD_RULES, STRICT, T0, explain=False)
        if not done.admit:
            break
        chosen = done.admit[0].job
        n = int(chosen.job_id[1:])
        queue.remove(chosen)
        answer = case.fireworks.get(n, "ok")
        if answer == "quota":
            break
        if answer == "4xx":
            failed.append(n)
            continue
        admitted.append(n)
        free[chosen.gpu_type] -= chosen.gpu_count
        run.append(
            Running(chosen.job_id, chosen.user_id, chosen.gpu_count, T0, T0, chosen.gpu_type)
        )
    return admitted, failed, reasons


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_old_service_scenario(case: Case) -> None:
    admitted, failed, reasons = play(case)
    assert admitted == case.admitted
    assert failed == case.failed
    for n, text in case.reasons.items():
        assert text in reasons[n]


def test_one_pass_admits_in_order_without_replanning() -> None:
    """With every create succeeding, a single pass's admissions are the old loop's."""
    queue = [job(1, "alice", 8), job(2, "bob", 4), job(3, "alice", 4), job(4, "carol", 8)]
    done = plan(queue, [], {"h200": 24}, OLD_RULES, STRICT, T0)
    assert [a.job.job_id for a in done.admit] == ["j1", "j2", "j3"]
    assert [a.available_before for a in done.admit] == [24, 16, 12]
    assert [a.size_class for a in done.admit] == ["big", "small", "small"]
    assert [p.queue_position for p in done.pending] == [4]
