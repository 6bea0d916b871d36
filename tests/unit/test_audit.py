from __future__ import annotations

import msgspec

from events.codec import encode
from events.job_events import Admitted, FireworksStateObserved, JobSubmitted
from projections.audit import (
    BUDGET,
    CAP,
    EXACTLY_ONCE,
    FIFO,
    LOG,
    STATE_MACHINE,
    Violation,
    audit,
)

try:
    from tests.unit.history import History, renumbered
except ImportError:  # tests/unit is not a package: pytest put this folder on sys.path
    from history import History, renumbered  # type: ignore[no-redef]

ANN, BOB, CAT = "ann@x.com", "bob@x.com", "cat@x.com"


def found(h: History, default_cap: int = 1, **kw: bool) -> list[tuple[str, tuple[int, ...]]]:
    return [(v.invariant, v.positions) for v in audit(h.rows, default_cap=default_cap, **kw)]


def test_a_clean_history_passes() -> None:
    h = History()
    h.user(ANN, cap=2)
    h.submit("a1", ANN, 4)
    h.submit("a2", ANN, 4)
    h.submit("b1", BOB, 8)
    h.admit("a1", available=16)
    h.admit("a2", available=12, in_use=4)
    h.admit("b1", available=8, in_use=4)
    for job in ("a1", "a2", "b1"):
        h.confirm(job)
        h.observe(job, 50.0)
    h.succeed("a1")
    h.submit("a3", ANN, 4)
    h.admit("a3", available=4, in_use=12)
    h.requeue("a3")
    h.cancel("a3")
    assert audit(h.rows, default_cap=1) == []


def test_cap_is_checked_at_every_admission() -> None:
    h = History()
    h.submit("a1", ANN)
    h.submit("a2", ANN)
    first = h.admit("a1", available=16)
    second = h.admit("a2", available=12, in_use=4)
    assert found(h) == [(CAP, (first, second))]
    assert found(h, default_cap=2) == []


def test_cap_comes_from_the_log_unless_told_otherwise() -> None:
    h = History()
    h.user(ANN, cap=2)
    h.submit("a1", ANN)
    h.submit("a2", ANN)
    h.admit("a1", available=16)
    h.admit("a2", available=12, in_use=4)
    assert found(h) == []
    assert [v.invariant for v in audit(h.rows, default_cap=1, caps_from_log=False)] == [CAP]
    h.set_cap(ANN, None)  # back to the default: the next admission is over the cap
    h.submit("a3", ANN)
    third = h.admit("a3", available=8, in_use=8)
    assert [(v.invariant, v.positions[-1], v.job_id) for v in audit(h.rows, default_cap=2)] == [
        (CAP, third, "a3")
    ]


def test_a_finished_job_frees_its_users_slot() -> None:
    h = History()
    h.submit("a1", ANN)
    h.submit("a2", ANN)
    h.admit("a1", available=16)
    h.confirm("a1")
    h.succeed("a1")
    h.admit("a2", available=16)
    assert found(h) == []


def test_budget_gpu_count_over_available() -> None:
    h = History()
    h.submit("a1", ANN, gpus=8)
    pos = h.admit("a1", available=4, quota=16, in_use=12)
    assert found(h) == [(BUDGET, (pos,))]


def test_budget_available_over_quota_minus_in_use() -> None:
    h = History()
    h.submit("a1", ANN, gpus=4)
    pos = h.admit("a1", available=8, quota=16, in_use=12)
    assert found(h) == [(BUDGET, (pos,))]


def test_budget_counts_ftq_progress_jobs_when_usage_is_stale() -> None:
    h = History()
    h.submit("a1", ANN, gpus=12)
    h.submit("b1", BOB, gpus=8)
    h.admit("a1", available=16, quota=16, in_use=0)
    h.confirm("a1")
    # Fireworks still reports 0 in use, but ftq's own a1 holds 12 of the 16 GPUs.
    pos = h.admit("b1", available=16, quota=16, in_use=0)
    assert found(h) == [(BUDGET, (pos,))]


def test_budget_allows_what_the_pass_subtracted() -> None:
    h = History()
    h.submit("a1", ANN, gpus=8)
    h.submit("b1", BOB, gpus=8)
    h.admit("a1", available=16, quota=16, in_use=0)
    h.admit("b1", available=8, quota=16, in_use=0)  # same pass: 16 - 8 already admitted
    assert found(h) == []


def test_strict_fifo_flags_a_job_admitted_past_an_earlier_eligible_one() -> None:
    h = History()
    big = h.submit("a1", ANN, gpus=8)
    h.submit("b1", BOB, gpus=4)
    pos = h.admit("b1", available=4)
    assert found(h) == [(FIFO, (big, pos))]
    (violation,) = audit(h.rows, default_cap=1)
    assert violation.job_id == "b1"
    assert "a1" in violation.message


def test_backfill_only_flags_earlier_jobs_that_fit() -> None:
    h = History()
    h.submit("a1", ANN, gpus=8)
    h.submit("b1", BOB, gpus=4)
    h.admit("b1", available=4, policy="backfill")
    assert found(h) == []
    h2 = History()
    small = h2.submit("a1", ANN, gpus=2)
    h2.submit("b1", BOB, gpus=4)
    pos = h2.admit("b1", available=4, policy="backfill")
    assert found(h2) == [(FIFO, (small, pos))]


def test_fifo_skips_users_at_their_cap_and_unknown_policies() -> None:
    h = History()
    h.submit("a0", ANN)
    h.admit("a0", available=16)
    h.submit("a1", ANN)  # ann is at her cap: a1 cannot go first
    h.submit("b1", BOB)
    h.admit("b1", available=12, in_use=4)
    assert found(h) == []
    h.submit("c1", CAT)
    h.user("dan@x.com")
    h.submit("d1", "dan@x.com")
    h.admit("d1", available=8, in_use=8, policy="fair-share")
    assert found(h) == []


def test_fifo_a_returned_job_keeps_its_original_place() -> None:
    h = History()
    first = h.submit("a1", ANN)
    h.submit("b1", BOB)
    h.admit("a1", available=16)
    h.requeue("a1")
    pos = h.admit("b1", available=16)
    assert found(h) == [(FIFO, (first, pos))]


def test_fifo_swapped_admissions_with_room_for_one() -> None:
    def history(order: tuple[str, str]) -> tuple[History, int, int]:
        h = History()
        early = h.submit("a1", ANN, gpus=8)
        h.submit("b1", BOB, gpus=8)
        first = h.admit(order[0], available=8, quota=8)
        h.confirm(order[0])
        h.succeed(order[0])
        h.admit(order[1], available=8, quota=8)
        return h, early, first

    assert found(history(("a1", "b1"))[0]) == []
    swapped, early, first = history(("b1", "a1"))
    assert found(swapped) == [(FIFO, (early, first))]


def test_exactly_once_one_fireworks_id_per_job() -> None:
    h = History()
    h.submit("a1", ANN)
    first = h.admit("a1", available=16)
    h.requeue("a1")
    h.admit("a1", available=16)  # the same id again: fine
    h.requeue("a1")
    again = h.admit("a1", available=16, fireworks_id="ftq-a1-retry")
    assert found(h) == [(EXACTLY_ONCE, (first, again))]


def test_exactly_once_no_shared_fireworks_id() -> None:
    h = History()
    h.submit("a1", ANN)
    h.submit("b1", BOB)
    first = h.admit("a1", available=16)
    second = h.admit("b1", available=12, in_use=4, fireworks_id="ftq-a1")
    assert found(h) == [(EXACTLY_ONCE, (first, second))]


def test_state_machine_first_event_must_be_submitted() -> None:
    h = History()
    h.submit("a1", ANN)
    h.admit("a1", available=16)
    rows = [r for r in h.rows if r.type != "job.submitted"]
    violations = audit(renumbered(rows), default_cap=1)
    assert {(v.invariant, v.job_id) for v in violations} == {(STATE_MACHINE, "a1")}
    assert any("first event" in v.message for v in violations)
    assert any("version 2, expected 1" in v.message for v in violations)


def test_state_machine_nothing_after_a_terminal_state() -> None:
    h = History()
    h.submit("a1", ANN)
    done = h.cancel("a1")
    late = h.admit("a1", available=16)
    assert found(h) == [(STATE_MACHINE, (done, late))]


def test_state_machine_admitted_only_with_an_admission_open() -> None:
    h = History()
    submitted = h.submit("a1", ANN)
    bad = h.append("a1", Admitted(at=h.now()))
    assert found(h) == [(STATE_MACHINE, (submitted, bad))]
    h2 = History()
    h2.submit("a1", ANN)
    h2.admit("a1", available=16)
    h2.confirm("a1")
    again = h2.confirm("a1")
    assert found(h2) == [(STATE_MACHINE, (again - 1, again))]


def test_state_machine_observations_only_once_admitted() -> None:
    h = History()
    h.submit("a1", ANN)
    opened = h.admit("a1", available=16)
    bad = h.append("a1", FireworksStateObserved(at=h.now(), fireworks_state="JOB_STATE_RUNNING"))
    assert found(h) == [(STATE_MACHINE, (opened, bad))]


def test_state_machine_duplicate_admission() -> None:
    h = History()
    h.submit("a1", ANN)
    first = h.admit("a1", available=16)
    second = h.admit("a1", available=16)
    assert found(h) == [(STATE_MACHINE, (first, second))]


def test_state_machine_stream_versions_are_contiguous() -> None:
    h = History()
    h.submit("a1", ANN)
    h.admit("a1", available=16)
    rows = list(h.rows)
    rows[-1] = msgspec.structs.replace(rows[-1], stream_version=3)
    assert [(v.invariant, v.positions) for v in audit(rows, default_cap=1)] == [
        (STATE_MACHINE, (rows[-1].position,))
    ]


def test_state_machine_submitted_must_name_its_stream() -> None:
    h = History()
    h.submit("a1", ANN)
    rows = list(h.rows)
    event = msgspec.json.decode(rows[-1].data, type=JobSubmitted)
    data = encode(msgspec.structs.replace(event, job_id="other"))
    rows[-1] = msgspec.structs.replace(rows[-1], data=data)
    assert [(v.invariant, v.job_id) for v in audit(rows, default_cap=1)] == [
        (STATE_MACHINE, "a1")
    ]


def test_an_undecodable_row_is_reported() -> None:
    h = History()
    h.submit("a1", ANN)
    rows = [*h.rows[:-1], msgspec.structs.replace(h.rows[-1], type="job.teleported")]
    assert audit(rows, default_cap=1) == [
        Violation(LOG, (rows[-1].position,), None, "unknown event type 'job.teleported'")
    ]
