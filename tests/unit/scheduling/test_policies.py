"""Given a queue, running jobs and headroom, when planned under each policy, then who is
admitted, in what order, with what reservation and reason."""

from __future__ import annotations

from datetime import timedelta

from msgspec.structs import replace

from events.domain.scheduling import (
    Limits,
    Policy,
    SchedulerState,
    check_admission,
    constant_estimate,
    plan,
)
from tests.unit.scheduling.helpers import T0, job, running

ANY = Limits(cap_small=None, cap_big=None)


def test_strict_stops_only_the_type_that_does_not_fit() -> None:
    queue = [job(1, "a", 8, "b200"), job(2, "b", 1, "b200"), job(3, "c", 4, "h200")]
    done = plan(queue, [], {"b200": 4, "h200": 4}, ANY, Policy("strict-fifo"), T0)
    assert [a.job.job_id for a in done.admit] == ["j3"]
    reasons = {p.job.job_id: p.reason for p in done.pending}
    assert reasons == {"j1": "needs 8 GPUs, 4 free", "j2": "behind job j1"}


def test_backfill_skips_what_does_not_fit() -> None:
    queue = [job(1, "a", 8), job(2, "b", 1)]
    done = plan(queue, [], {"h200": 4}, ANY, Policy("backfill"), T0)
    assert [a.job.job_id for a in done.admit] == ["j2"]


def test_reserve_backfills_only_what_does_not_delay_the_reservation() -> None:
    # 6 free now; a 4-GPU job ends in 1 h: the 10-GPU head job is reserved for T0+1h
    run = [running(1, "z", 4, ends_in_s=3600)]
    queue = [
        job(1, "a", 10),
        job(2, "b", 4, max_runtime_minutes=30),  # ends before the reservation: may start
        job(3, "c", 2),  # fits now, but runs past it on GPUs the reservation needs: waits
    ]
    done = plan(
        queue, run, {"h200": 6}, ANY, Policy("reserve"), T0, estimate=constant_estimate(7200)
    )
    assert [a.job.job_id for a in done.admit] == ["j2"]
    res = done.reservations["h200"]
    assert (res.job_id, res.at, res.spare) == ("j1", T0 + timedelta(hours=1), 0)
    reasons = {p.job.job_id: p.reason for p in done.pending}
    assert reasons["j1"] == "needs 10 GPUs, 6 free; GPUs reserved for it at 01:00"
    assert reasons["j3"].startswith("waiting for a reservation at 01:00 for job j1")


def test_reserve_lets_a_job_use_the_spare_gpus() -> None:
    run = [running(1, "z", 8, ends_in_s=3600)]
    queue = [job(1, "a", 6), job(2, "b", 2), job(3, "c", 2)]
    done = plan(queue, run, {"h200": 4}, ANY, Policy("reserve"), T0)
    # at T0+1h 12 GPUs are free, 6 needed: 6 spare; both 2-GPU jobs fit now and in the spare
    assert [a.job.job_id for a in done.admit] == ["j2", "j3"]
    assert [a.spare_before for a in done.admit] == [6, 4]


def test_fair_share_orders_users_by_decayed_usage_with_weights() -> None:
    queue = [job(1, "heavy"), job(2, "light"), job(3, "heavy")]
    usage = {"heavy": 1000.0, "light": 10.0}
    done = plan(queue, [], {"h200": 4}, ANY, Policy("fair-share"), T0, usage=usage)
    assert [a.job.job_id for a in done.admit] == ["j2"]
    assert done.order == ["j2", "j1", "j3"]
    reason = {p.job.job_id: p.reason for p in done.pending}["j1"]
    assert "behind 1 job of users with less recent usage" in reason
    weighted = Policy("fair-share", weights={"heavy": 1000.0})
    again = plan(queue, [], {"h200": 4}, ANY, weighted, T0, usage=usage)
    assert again.order == ["j1", "j3", "j2"]  # 1000/1000 < 10/1


def test_fair_share_max_wait_goes_ahead_of_usage() -> None:
    old = job(1, "heavy", at=-80 * 3600)  # waited 80 h > 72 h
    queue = [old, job(2, "light")]
    done = plan(
        queue, [], {"h200": 4}, ANY, Policy("fair-share", aging_hours=0), T0, usage={"heavy": 1e9}
    )
    assert done.order == ["j1", "j2"]


def test_priority_orders_first_and_ages() -> None:
    low = job(1, "a", priority=10, at=-3600 * 6 * 30)  # waited 30 aging periods: 40
    high = job(2, "b", priority=45)
    fresh_low = job(3, "c", priority=10)
    done = plan([low, high, fresh_low], [], {"h200": 0}, ANY, Policy("strict-fifo"), T0)
    assert done.order == ["j2", "j1", "j3"]
    aged = job(4, "a", priority=10, at=-3600 * 6 * 40)  # 10 + 40 periods = 50 > 45
    done = plan([high, aged], [], {"h200": 0}, ANY, Policy("strict-fifo"), T0)
    assert done.order == ["j4", "j2"]


def test_queue_position_is_the_rank_not_reshuffled_by_caps() -> None:
    queue = [job(1, "a"), job(2, "b")]
    done = plan(queue, [running(1, "a")], {"h200": 8}, Limits(), Policy("strict-fifo"), T0)
    first = done.pending[0]
    assert (first.job.job_id, first.queue_position) == ("j1", 1)
    assert first.reason == "you already have a job in PROGRESS"
    assert done.admit[0].queue_position == 2


def test_no_cap_means_no_cap() -> None:
    queue = [job(n, "a", 1) for n in range(10)]
    done = plan(
        queue, [running(1, "a")], {"h200": 10}, Limits(cap_small=None), Policy("strict-fifo"), T0
    )
    assert len(done.admit) == 10


def test_scheduler_state_drives_the_same_planner() -> None:
    state = SchedulerState(Limits(cap_small=1), Policy("reserve"), {"h200": 8}, T0)
    state.arrive(job(1, "a", 8))
    state.arrive(job(2, "b", 4))
    first = state.plan(T0)
    assert [a.job.job_id for a in first.admit] == ["j1"]
    state.admit("j1", T0)
    assert state.headroom() == {"h200": 0}
    later = T0 + timedelta(minutes=30)
    state.finish("j1", later)
    assert state.estimator.typical("a", "SFT", 8) == 1800
    again = state.plan(later)
    assert [a.job.job_id for a in again.admit] == ["j2"]
    state.cancel("j2", later)
    assert state.plan(later).admit == []


def test_audit_catches_each_broken_rule() -> None:
    """Admissions the planner would never make, each caught by its rule."""
    lim = Limits(big_job_gpus=8, cap_small=1, cap_big=1, big_job_reserve=4)
    strict = Policy("strict-fifo")
    queue = [job(1, "a", 4), job(2, "b", 4), job(3, "c", 8)]
    good = plan(queue, [], {"h200": 8}, lim, strict, T0).admit[0]
    assert check_admission(good, queue, [], lim, strict, T0) == []
    over = replace(good, available_before=2)
    assert any(v.startswith("budget") for v in check_admission(over, queue, [], lim, strict, T0))
    capped = check_admission(good, queue, [running(9, "a")], lim, strict, T0)
    assert any(v.startswith("class-cap") for v in capped)
    jumped = replace(good, job=queue[1])
    assert any(v.startswith("order") for v in check_admission(jumped, queue, [], lim, strict, T0))
    big = replace(good, job=queue[2], available_before=10)
    assert any(
        v.startswith("big-reserve") for v in check_admission(big, [queue[2]], [], lim, strict, T0)
    )
    # reserve: a backfill that would delay the reservation
    run = [running(1, "z", 4, ends_in_s=3600)]
    rq = [job(1, "a", 8), job(2, "b", 4)]
    rp = Policy("reserve")
    done = plan(
        rq, run, {"h200": 4}, Limits(cap_small=None), rp, T0, estimate=constant_estimate(600)
    )
    ok = done.admit[0]
    assert check_admission(ok, rq, run, Limits(cap_small=None), rp, T0) == []
    late = replace(ok, estimate_s=7200.0)
    assert any(
        v.startswith("reservation")
        for v in check_admission(late, rq, run, Limits(cap_small=None), rp, T0)
    )
    # fair-share: the usage order recorded was not followed
    fq = [job(1, "heavy"), job(2, "light")]
    fp = Policy("fair-share")
    wrong = plan(fq, [], {"h200": 4}, ANY, fp, T0, usage={"light": 1e6}).admit[0]
    assert wrong.job.job_id == "j1"
    assert check_admission(wrong, fq, [], ANY, fp, T0, usage={"light": 1e6}) == []
    assert any(
        v.startswith("order")
        for v in check_admission(wrong, fq, [], ANY, fp, T0, usage={"heavy": 1e6})
    )
