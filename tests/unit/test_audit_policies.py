"""`ftq audit` checks each admission against the policy recorded in force at its position
(`scheduler.policy_in_force`): histories that break each rule are caught, and histories that
keep them (including what the old FIFO check alone would have called a violation) pass."""

from __future__ import annotations

from datetime import timedelta

from projections.audit import (
    BIG_RESERVE,
    CAP,
    CLASS_CAP,
    FIFO,
    ORDER,
    POLICY,
    RESERVATION,
    audit,
)

try:
    from tests.unit.history import History
except ImportError:  # tests/unit is not a package: pytest put this folder on sys.path
    from history import History  # type: ignore[no-redef]

ANN, BOB, CAT = "ann@x.com", "bob@x.com", "cat@x.com"
OLD_RULES = {"big_job_gpus": 8, "user_cap_small": 2, "user_cap_big": 1, "big_job_reserve": 4}


def found(h: History, default_cap: int = 1) -> list[tuple[str, int]]:
    return [(v.invariant, v.positions[-1]) for v in audit(h.rows, default_cap=default_cap)]


def test_an_admission_under_another_policy_than_the_one_in_force() -> None:
    h = History()
    h.policy("reserve")
    h.submit("a1", ANN)
    pos = h.admit("a1", available=16, policy="strict-fifo")
    assert (POLICY, pos) in found(h)


def test_the_old_services_rules_pass_where_the_old_fifo_check_would_not() -> None:
    """Classes on: a big job held by the reserve is skipped (blocks nothing), so a small job
    behind it is admitted; the plain FIFO check (no policy recorded) calls it a violation."""
    h = History()
    h.policy("strict-fifo", **OLD_RULES)
    h.submit("big", ANN, gpus=8)  # 10 free: 8 would leave 2 < 4
    h.submit("small", BOB, gpus=2)
    h.admit("small", available=10, policy="strict-fifo", size_class="small", cap=2)
    assert found(h) == []
    plain = History()
    plain.submit("big", ANN, gpus=8)
    plain.submit("small", BOB, gpus=2)
    pos = plain.admit("small", available=1, policy="strict-fifo")
    assert (FIFO, pos) in found(plain)


def test_class_cap_and_per_user_caps_per_class() -> None:
    h = History()
    h.policy("strict-fifo", **OLD_RULES)
    h.submit("b1", ANN, gpus=8)
    h.submit("b2", ANN, gpus=8)
    h.admit("b1", available=32, quota=32, size_class="big", cap=1)
    pos = h.admit("b2", available=24, quota=32, in_use=8, size_class="big", cap=1,
                 user_load=1)  # fmt: skip
    assert found(h) == [(CLASS_CAP, pos)]
    # a per-user override of the big class makes the same history clean
    ok = History()
    ok.user(ANN)
    ok.set_cap(ANN, 2, size_class="big")
    ok.policy("strict-fifo", **OLD_RULES)
    ok.submit("b1", ANN, gpus=8)
    ok.submit("b2", ANN, gpus=8)
    ok.admit("b1", available=32, quota=32, size_class="big", cap=2)
    ok.admit("b2", available=24, quota=32, in_use=8, size_class="big", cap=2,
               user_load=1)  # fmt: skip
    assert found(ok) == []
    # `none`: no cap at all for small jobs
    free = History()
    free.user(ANN)
    free.set_cap(ANN, None, unlimited=True)
    free.policy("strict-fifo", **OLD_RULES)
    for n in range(4):
        free.submit(f"s{n}", ANN, gpus=1)
    for n in range(4):
        free.admit(f"s{n}", available=32 - n, quota=32, in_use=n)
    assert found(free) == []


def test_a_big_admission_must_leave_the_reserve() -> None:
    h = History()
    h.policy("strict-fifo", **OLD_RULES)
    h.submit("b1", ANN, gpus=8)
    pos = h.admit("b1", available=10, size_class="big", cap=1)
    assert found(h) == [(BIG_RESERVE, pos)]


def test_strict_order_with_classes_and_types() -> None:
    h = History()
    h.policy("strict-fifo", **OLD_RULES)
    h.submit("s1", ANN, gpus=2)
    h.submit("s2", BOB, gpus=2)
    pos = h.admit("s2", available=16)  # s1 fitted and was eligible
    assert found(h) == [(ORDER, pos)]
    # a b200 job that does not fit stops only b200 jobs: an h200 job behind it is fine
    t = History()
    t.policy("strict-fifo")
    t.submit("b", ANN, gpus=8, gpu_type="b200")
    t.submit("h", BOB, gpus=4, gpu_type="h200")
    t.admit("h", available=8, gpu_type="h200")
    assert found(t) == []


def test_priority_goes_before_fifo() -> None:
    h = History()
    h.policy("strict-fifo")
    h.submit("low", ANN, gpus=2, priority=10)
    h.submit("high", BOB, gpus=2, priority=90)
    h.admit("high", available=16)  # first in the policy's order: clean
    assert found(h) == []
    bad = History()
    bad.policy("strict-fifo")
    bad.submit("low", ANN, gpus=2, priority=10)
    bad.submit("high", BOB, gpus=2, priority=90)
    pos = bad.admit("low", available=16)
    assert found(bad) == [(ORDER, pos)]


def test_reserve_an_admission_that_delays_the_reservation() -> None:
    h = History()
    h.policy("reserve")
    h.submit("r1", CAT, gpus=12)
    h.admit("r1", available=16, policy="reserve")  # holds 12 of 16 until its end
    h.confirm("r1")
    h.submit("big", ANN, gpus=16)  # blocked: reserved for when r1 ends
    h.submit("long", BOB, gpus=4)
    at = h.clock + timedelta(hours=1)
    evidence = {
        "reservation_job": "big",
        "reservation_at": at,
        "reservation_spare": 0,
        "spare_before": 0,
        "holders": ["big"],
    }
    ends_after = h.admit("long", available=4, in_use=12, policy="reserve",
                         estimate_s=7200.0, **evidence)  # fmt: skip
    assert found(h) == [(RESERVATION, ends_after)]
    ok = History()
    ok.policy("reserve")
    ok.submit("r1", CAT, gpus=12)
    ok.admit("r1", available=16, policy="reserve")
    ok.confirm("r1")
    ok.submit("big", ANN, gpus=16)
    ok.submit("short", BOB, gpus=4)
    evidence["reservation_at"] = ok.clock + timedelta(hours=1)
    ok.admit("short", available=4, in_use=12, policy="reserve", estimate_s=600.0, **evidence)
    assert found(ok) == []
    # no reservation recorded although the job ahead was blocked
    none = History()
    none.policy("reserve")
    none.submit("r1", CAT, gpus=12)
    none.admit("r1", available=16, policy="reserve")
    none.confirm("r1")
    none.submit("big", ANN, gpus=16)
    none.submit("short", BOB, gpus=4)
    pos = none.admit("short", available=4, in_use=12, policy="reserve", estimate_s=600.0)
    assert found(none) == [(RESERVATION, pos)]


def test_fair_share_admits_in_the_order_of_usage() -> None:
    h = History()
    h.policy("fair-share", max_wait_hours=72)
    h.submit("a0", ANN, gpus=8)
    h.admit("a0", available=16, policy="fair-share")  # ann runs: she has usage
    h.confirm("a0")
    h.clock += timedelta(hours=3)
    h.succeed("a0")
    h.submit("a1", ANN, gpus=4)  # ann first in FIFO order, but she has used GPUs
    h.submit("b1", BOB, gpus=4)
    pos = h.admit("a1", available=16, policy="fair-share")
    assert found(h) == [(ORDER, pos)]
    ok = History()
    ok.policy("fair-share", max_wait_hours=72)
    ok.submit("a0", ANN, gpus=8)
    ok.admit("a0", available=16, policy="fair-share")
    ok.confirm("a0")
    ok.clock += timedelta(hours=3)
    ok.succeed("a0")
    ok.submit("a1", ANN, gpus=4)
    ok.submit("b1", BOB, gpus=4)
    ok.admit("b1", available=16, policy="fair-share")
    assert found(ok) == []


def test_the_cap_in_force_comes_from_the_record() -> None:
    h = History()
    h.policy("strict-fifo", user_cap_small=2)
    h.submit("a1", ANN)
    h.submit("a2", ANN)
    h.submit("a3", ANN)
    h.admit("a1", available=16)
    h.admit("a2", available=12, in_use=4)
    third = h.admit("a3", available=8, in_use=8)
    assert found(h) == [(CAP, third)]
