"""Pipelines (`after`, issue 18 item 5) in the pure domain: the eligibility filter, the
decider's rules and the audit's `dependencies` check."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.domain.job import decide, evolve, fold, initial_state
from events.domain.job_commands import FailForDependency, RequestCancel, SubmitJob
from events.domain.job_events import DependencyFailed
from events.domain.rejections import InvalidState
from events.domain.scheduling.dependencies import broken, gate, unmet, waiting_reason
from projections.audit import DEPENDENCIES, FIFO, STATE_MACHINE, audit

try:
    from tests.unit.history import History
except ImportError:  # tests/unit is not a package: pytest put this folder on sys.path
    from history import History  # type: ignore[no-redef]

T = datetime(2026, 1, 1, tzinfo=UTC)
ANN, BOB = "ann@x.com", "bob@x.com"


def submit(job_id: str = "j", after: tuple[str, ...] = ()) -> SubmitJob:
    return SubmitJob(
        at=T,
        job_id=job_id,
        user_id="u",
        user_email="u@x.com",
        kind="DPO",
        display_name=None,
        gpu_count=4,
        fireworks_payload={},
        after=after,
    )


def test_gate_holds_back_jobs_until_every_dependency_succeeded() -> None:
    queue = ["a", "b", "c", "d"]
    waits = {"b": ["x", "y"], "c": ["x"], "d": ["z"]}
    statuses = {"x": "SUCCESS", "y": "PROGRESS", "z": None}
    free, held = gate(queue, str, waits, statuses)
    assert free == ["a", "c"]
    assert held == [("b", waiting_reason("y")), ("d", waiting_reason("z"))]
    assert waiting_reason("y") == "waiting for job y to succeed"
    assert gate(queue, str, {}, {}) == (queue, [])
    assert unmet(["x", "y"], statuses) == "y" and unmet(["x"], statuses) is None
    assert broken(["x", "y"], {"x": "SUCCESS", "y": "CANCELLED"}) == ("y", "CANCELLED")
    assert broken(["x"], statuses) is None


def test_decider_records_after_and_fails_for_a_dependency() -> None:
    state = fold(decide(submit(after=("p", "q")), initial_state()))
    assert state.status == "QUEUED" and state.after == ("p", "q")
    with pytest.raises(InvalidState):
        decide(submit(job_id="j", after=("j",)), initial_state())  # no cycle of one
    with pytest.raises(InvalidState):
        decide(FailForDependency(at=T, dependency_id="r", dependency_status="FAIL"), state)
    (event,) = decide(FailForDependency(at=T, dependency_id="q", dependency_status="FAIL"), state)
    assert isinstance(event, DependencyFailed) and event.dependency_id == "q"
    failed = evolve(state, event)
    assert failed.status == "FAIL" and failed.error is not None
    assert "job q" in failed.error and "FAIL" in failed.error
    cancelled = fold(decide(RequestCancel(at=T, by="u"), state), state)
    with pytest.raises(InvalidState):  # only a QUEUED job fails for a dependency
        decide(FailForDependency(at=T, dependency_id="q", dependency_status="FAIL"), cancelled)


def test_audit_flags_an_admission_before_the_dependency_succeeded() -> None:
    h = History()
    h.submit("sft", ANN)
    h.submit("dpo", ANN, after=("sft",))
    h.admit("sft", available=16)
    h.confirm("sft")
    early = h.admit("dpo", available=12, in_use=4)
    violations = audit(h.rows, default_cap=2)
    assert [(v.invariant, v.positions[-1]) for v in violations] == [(DEPENDENCIES, early)]
    assert "sft" in violations[0].message


def test_audit_a_clean_chain_and_a_waiting_job_blocks_no_one() -> None:
    h = History()
    h.submit("sft", ANN)
    h.submit("dpo", ANN, after=("sft",))  # waits: not eligible, so bob's job may pass it
    h.submit("bob", BOB)
    h.admit("sft", available=16)
    h.admit("bob", available=12, in_use=4)
    h.confirm("sft")
    h.succeed("sft")
    h.admit("dpo", available=12, in_use=4)
    assert audit(h.rows, default_cap=1) == []
    # without the dependency the same admission of bob's job passes ann's earlier job
    g = History()
    g.submit("sft", ANN)
    g.submit("dpo", ANN)
    g.submit("other", BOB)
    g.admit("sft", available=16)
    g.admit("other", available=12, in_use=4)
    assert [v.invariant for v in audit(g.rows, default_cap=2)] == [FIFO]


def test_audit_dependency_failed_only_while_queued() -> None:
    h = History()
    h.submit("a", ANN)
    h.submit("b", ANN, after=("a",))
    h.cancel("a")
    reason = DependencyFailed(
        at=h.now(), dependency_id="a", dependency_status="CANCELLED", message="m"
    )
    h.append("b", reason)
    assert audit(h.rows, default_cap=1) == []
    h.append("b", reason)  # after the terminal FAIL
    assert [v.invariant for v in audit(h.rows, default_cap=1)] == [STATE_MACHINE]


STATES = st.sampled_from(["QUEUED", "PROGRESS", "SUCCESS", "FAIL", "CANCELLED", None])


@given(
    queue=st.lists(st.sampled_from("abcdefgh"), unique=True),
    waits=st.dictionaries(
        st.sampled_from("abcdefgh"), st.lists(st.sampled_from("pqrstu"), min_size=1, max_size=3)
    ),
    statuses=st.dictionaries(st.sampled_from("pqrstu"), STATES),
)
def test_gate_keeps_order_and_frees_exactly_the_jobs_whose_dependencies_succeeded(
    queue: list[str], waits: dict[str, list[str]], statuses: dict[str, str | None]
) -> None:
    free, held = gate(queue, str, waits, statuses)
    assert sorted(free + [job for job, _ in held]) == sorted(queue)
    assert free == [j for j in queue if j in free]  # order kept
    assert [job for job, _ in held] == [j for j in queue if j not in free]
    for job in free:
        assert all(statuses.get(d) == "SUCCESS" for d in waits.get(job, ()))
    for job, reason in held:
        first = next(d for d in waits[job] if statuses.get(d) != "SUCCESS")
        assert reason == waiting_reason(first)
