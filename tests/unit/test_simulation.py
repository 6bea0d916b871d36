"""The simulator: hand-made traces with known answers, an independent strict-FIFO
simulator, determinism, metrics by definition, and bad traces."""

from __future__ import annotations

import heapq
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.domain.scheduling import Limits, Policy, PolicyName
from events.domain.simulation import TraceError, metrics, parse_trace, simulate
from events.domain.simulation.metrics import jain, nearest_rank
from events.domain.simulation.scheduler import DomainPlanner
from events.domain.simulation.trace import TraceJob

HEADER = "job_id,user,submitted_at,gpu_count,duration_s\n"
TRACE = Path(__file__).parents[2] / "bench" / "data" / "philly-2017-sep-oct.csv"


def job(job_id: str, user: str, at: float, gpus: int, duration: float) -> TraceJob:
    return TraceJob(job_id=job_id, user=user, submitted_at=at, gpu_count=gpus, duration_s=duration)


def planner(
    policy: PolicyName = "strict-fifo",
    quota: dict[str, int] | int = 8,
    limits: Limits | None = None,
    epoch: float = 0.0,
    **knobs: float,
) -> DomainPlanner:
    pools = {"*": quota} if isinstance(quota, int) else quota
    limits = limits or Limits(cap_small=None, cap_big=None)
    return DomainPlanner(limits, Policy(policy, **knobs), pools, epoch=epoch)


def starts(
    jobs: list[TraceJob],
    quota: int,
    policy: PolicyName = "strict-fifo",
    cap: int | None = None,
    limits: Limits | None = None,
    **knobs: float,
):
    limits = limits or Limits(cap_small=cap, cap_big=cap)
    out = simulate(jobs, planner(policy, quota, limits, **knobs), {"*": quota})
    return {r.job.job_id: r.start for r in out.runs}, out


def test_a_job_runs_exactly_its_duration_and_admission_is_instant() -> None:
    got, out = starts([job("a", "u", 10, 4, 100)], 8)
    assert got == {"a": 10} and out.runs[0].end == 110


def test_completions_at_a_moment_free_gpus_for_arrivals_of_that_moment() -> None:
    got, _ = starts([job("a", "u", 0, 8, 100), job("b", "v", 100, 8, 5)], 8)
    assert got == {"a": 0, "b": 100}


def test_strict_fifo_stops_behind_a_job_that_does_not_fit() -> None:
    jobs = [job("a", "u", 0, 6, 100), job("b", "v", 1, 4, 10), job("c", "w", 2, 2, 10)]
    got, _ = starts(jobs, 8)
    assert got == {"a": 0, "b": 100, "c": 100}
    got, _ = starts(jobs, 8, policy="backfill")
    assert got == {"a": 0, "c": 2, "b": 100}


def test_fifo_ties_break_on_job_id() -> None:
    got, _ = starts([job("b", "v", 0, 8, 10), job("a", "u", 0, 8, 10)], 8)
    assert got == {"a": 0, "b": 10}


def test_jobs_larger_than_the_quota_are_unschedulable_and_left_out() -> None:
    _, out = starts([job("a", "u", 0, 16, 10), job("b", "u", 0, 8, 10)], 8)
    assert [j.job_id for j in out.unschedulable] == ["a"]
    assert metrics(out, 8).jobs == 1 and metrics(out, 8).unschedulable == 1


def test_user_cap_holds_a_users_second_job() -> None:
    got, _ = starts([job("a", "u", 0, 1, 10), job("b", "u", 0, 1, 10)], 8, cap=1)
    assert got == {"a": 0, "b": 10}


def test_reserve_holds_a_later_job_that_would_delay_the_reserved_one() -> None:
    # b (8 GPUs) is reserved at a's expected end (the default 2 h estimate); c's estimate
    # (2 h, nothing observed yet) would end after that and no GPU is spare: c waits
    jobs = [job("a", "u", 0, 4, 1000), job("b", "v", 1, 8, 100), job("c", "w", 2, 4, 50)]
    got, _ = starts(jobs, 8, policy="reserve")
    assert got == {"a": 0, "b": 1000, "c": 1100}
    got, _ = starts(jobs, 8, policy="backfill")
    assert got == {"a": 0, "c": 2, "b": 1000}


def test_reserve_backfills_a_job_that_fits_in_the_spare_gpus() -> None:
    jobs = [job("a", "u", 0, 4, 1000), job("b", "v", 1, 6, 100), job("c", "w", 2, 2, 50)]
    got, _ = starts(jobs, 8, policy="reserve")
    assert got == {"a": 0, "c": 2, "b": 1000}


def test_fair_share_admits_the_user_with_less_usage_first() -> None:
    jobs = [job("a", "u", 0, 8, 100), job("b", "u", 50, 8, 10), job("c", "v", 60, 8, 10)]
    got, _ = starts(jobs, 8, policy="fair-share")
    assert got == {"a": 0, "c": 100, "b": 110}
    got, _ = starts(jobs, 8, policy="strict-fifo")
    assert got == {"a": 0, "b": 100, "c": 110}


def test_fair_share_puts_an_overdue_job_first() -> None:
    jobs = [job("a", "u", 0, 8, 100), job("b", "u", 50, 8, 10), job("c", "v", 60, 8, 10)]
    got, _ = starts(jobs, 8, policy="fair-share", max_wait_hours=0.01)  # 36 s
    assert got == {"a": 0, "b": 100, "c": 110}


def test_size_class_caps_hold_a_users_extra_jobs_per_class() -> None:
    limits = Limits(big_job_gpus=4, cap_small=2, cap_big=1)
    jobs = [job("b1", "u", 0, 4, 100), job("b2", "u", 0, 4, 100)]
    jobs += [job(f"s{k}", "u", 0, 1, 10) for k in range(3)]
    got, _ = starts(jobs, 16, limits=limits)
    assert got == {"b1": 0, "s0": 0, "s1": 0, "s2": 10, "b2": 100}


def test_the_big_job_reserve_skips_a_big_job_and_lets_a_small_one_past() -> None:
    limits = Limits(big_job_gpus=4, cap_small=None, cap_big=None, big_job_reserve=4)
    jobs = [job("a", "u", 0, 4, 100), job("b", "v", 0, 4, 100), job("c", "w", 0, 2, 10)]
    got, _ = starts(jobs, 8, limits=limits)
    assert got == {"a": 0, "c": 0, "b": 100}


def test_per_type_quota_keeps_separate_pools(tmp_path: Path) -> None:
    body = (
        HEADER.strip()
        + ",gpu_type\n"
        + "".join(
            f"{i},u{i},2017-09-04T10:00:0{i}Z,{g},100,{t}\n"
            for i, (g, t) in enumerate([(8, "h200"), (4, "b200"), (8, "b200"), (4, "h200")])
        )
    )
    jobs = parse_trace(body.splitlines(keepends=True), "t.csv")
    quota = {"h200": 8, "b200": 4}
    out = simulate(jobs, planner("strict-fifo", quota, epoch=jobs[0].submitted_at), quota)
    got = {r.job.job_id: r.start - jobs[0].submitted_at for r in out.runs}
    assert got == {"0": 0, "1": 1, "3": 100}
    assert [j.job_id for j in out.unschedulable] == ["2"]
    path = tmp_path / "t.csv"
    path.write_text(body)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "simulate", str(path), "--quota",
         "h200=8,b200=4", "--json"], capture_output=True, check=True, text=True,
    )  # fmt: skip
    assert '"unschedulable": 1' in done.stdout


def test_estimates_see_only_jobs_finished_so_far() -> None:
    sim = planner("reserve")
    sim.arrive(job("a", "u", 0, 4, 5), 0)
    assert sim.estimate("a") == 7200  # the default: nothing finished, not its own 5 s
    assert sim.plan(0) == ["a"]
    sim.finish("a", 5, 5)
    sim.arrive(job("b", "u", 6, 4, 9999), 6)
    assert sim.estimate("b") == 5  # the runtime observed for a
    sim.arrive(job("c", "v", 6, 2, 1), 6)
    assert sim.estimate("c") == 7200  # nothing of 2 GPUs finished


def test_a_running_job_past_its_estimate_is_not_expected_to_end_now() -> None:
    sim = planner("reserve")
    sim.arrive(job("a", "u", 0, 4, 10), 0)
    sim.plan(0)
    sim.finish("a", 10, 10)
    sim.arrive(job("b", "u", 20, 4, 500), 20)
    sim.plan(20)
    assert sim.remaining("b", 100) == 60  # ran 80 s, past every observation: the floor


def test_fair_share_with_a_short_half_life_over_a_long_trace_does_not_overflow() -> None:
    jobs = [job(f"j{k}", "uv"[k % 2], k * 86400.0, 8, 3600) for k in range(60)]
    got, _ = starts(jobs, 8, policy="fair-share", half_life_hours=0.5)
    assert got == {j.job_id: j.submitted_at for j in jobs}


def test_bad_options_exit_2_and_simulate_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "a,u,2017-09-04T10:30:41Z,4,5\n")
    for extra in (["--user-cap", "x"], ["--user-cap-big", "-1"], ["--policy", "lottery"],
                  ["--half-life-hours", "0"]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "simulate", str(path), "--quota", "8", *extra],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 2 and done.stdout == "", extra
        assert len(done.stderr.strip().splitlines()) == 1, extra


def test_metrics_follow_their_definitions() -> None:
    jobs = [job("a", "u", 0, 8, 1000), job("b", "v", 0, 8, 100)]
    _, out = starts(jobs, 8)  # a at 0, b at 1000
    m = metrics(out, 8)
    assert (m.mean_wait_s, m.p50_wait_s, m.max_wait_s) == (500, 0, 1000)
    assert m.utilization == 0  # first and last submission coincide: no span
    slow_b = (1000 + 600) / 600
    assert m.mean_bounded_slowdown == pytest.approx((1 + slow_b) / 2)
    assert m.jain_slowdown == pytest.approx((1 + slow_b) ** 2 / (2 * (1 + slow_b**2)))
    assert nearest_rank([1, 2, 3, 4], 50) == 2 and nearest_rank([1, 2, 3, 4], 95) == 4
    assert jain([2, 2, 2]) == 1


def test_utilization_counts_busy_gpu_seconds_between_first_and_last_submission() -> None:
    _, out = starts([job("a", "u", 0, 4, 50), job("b", "v", 100, 4, 50)], 8)
    assert metrics(out, 8).utilization == pytest.approx(4 * 50 / (8 * 100))


def minimal_strict_fifo(jobs: list[TraceJob], quota: int) -> dict[str, float]:
    """An independent strict FIFO (no per-user cap) sharing nothing with the planner."""
    pending = sorted(jobs, key=lambda j: (j.submitted_at, j.job_id))
    queue: list[TraceJob] = []
    ends: list[tuple[float, int]] = []
    free, got, i = quota, {}, 0
    while i < len(pending) or queue or ends:
        arrival = [pending[i].submitted_at] if i < len(pending) else []
        now = min(arrival + ([ends[0][0]] if ends else []))
        while ends and ends[0][0] == now:
            free += heapq.heappop(ends)[1]
        while i < len(pending) and pending[i].submitted_at == now:
            queue.append(pending[i])
            i += 1
        while queue and queue[0].gpu_count <= free:
            j = queue.pop(0)
            got[j.job_id] = now
            free -= j.gpu_count
            heapq.heappush(ends, (now + j.duration_s, j.gpu_count))
    return got


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 8), st.integers(0, 40),
                          st.sampled_from("uvw")), max_size=25))  # fmt: skip
def test_strict_fifo_equals_an_independent_simulator(rows: list[tuple[int, int, int, str]]) -> None:
    jobs = [job(f"j{k:02}", u, at, g, d) for k, (at, g, d, u) in enumerate(rows)]
    got, _ = starts(jobs, 8)
    assert got == minimal_strict_fifo(jobs, 8)


def test_the_simulation_is_deterministic_byte_for_byte() -> None:
    argv = [sys.executable, "-m", "service.cli", "simulate", str(TRACE), "--quota", "512",
            "--policy", "strict-fifo", "--policy", "backfill", "--policy", "reserve",
            "--policy", "fair-share", "--json"]  # fmt: skip
    first = subprocess.run(argv, capture_output=True, check=True).stdout
    assert first == subprocess.run(argv, capture_output=True, check=True).stdout
    assert b'"mean_wait_s"' in first


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("job_id,user,submitted_at,gpu_count\n", "t.csv:1: missing column 'duration_s'"),
        (HEADER + "a,u,yesterday,4,10\n", "t.csv:2:3: submitted_at"),
        (HEADER + "a,u,2017-09-04T10:30:41Z,4,-5\n", "t.csv:2:5: duration_s"),
        (HEADER + "a,u,2017-09-04T10:30:41Z,-4,5\n", "t.csv:2:4: gpu_count"),
        (HEADER + "a,u,2017-09-04T10:30:41Z,4,5\na,v,2017-09-04T10:30:42Z,4,5\n",
         "t.csv:3:1: job_id: duplicate 'a' (first on line 2)"),
    ],
)  # fmt: skip
def test_bad_traces_name_file_line_and_column(body: str, where: str, tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="^" + where.replace("(", r"\(").replace(")", r"\)")):
        parse_trace(body.splitlines(keepends=True), "t.csv")
    path = tmp_path / "t.csv"
    path.write_text(body)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "simulate", str(path), "--quota", "8"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and where in done.stderr and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1


def test_plot_and_per_job_files_are_written(tmp_path: Path) -> None:
    png, per_job = tmp_path / "s.png", tmp_path / "jobs.csv"
    argv = [sys.executable, "-m", "service.cli", "simulate", str(TRACE), "--quota", "512",
            "--policy", "strict-fifo", "--policy", "backfill",
            "--plot", str(png), "--per-job", str(per_job)]  # fmt: skip
    subprocess.run(argv, capture_output=True, check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = per_job.read_text().splitlines()
    assert lines[0] == "policy,job_id,user,gpu_count,submitted_at,start,end"
    assert len(lines) == 1 + 2 * 1455


def test_etas_are_exact_when_every_runtime_equals_the_estimate() -> None:
    from events.domain.simulation import accuracy, measure_etas  # noqa: PLC0415

    jobs = [job(f"j{k}", f"u{k}", k, 8, 7200) for k in range(5)]  # default estimate: 2 h
    _, records = measure_etas(jobs, planner("strict-fifo", 8), {"*": 8},
                                default_runtime_s=7200, floor_s=0)  # fmt: skip
    assert [r.job_id for r in records] == ["j1", "j2", "j3", "j4"]  # j0 started at once
    assert all(r.eta == r.start for r in records)
    assert accuracy(records).ftq_median_abs_error_h == 0
    assert accuracy(records).naive_median_abs_error_h > 0


def test_remaining_time_is_the_median_of_longer_observed_runtimes() -> None:
    from events.domain.scheduling import Job, RuntimeEstimator  # noqa: PLC0415

    estimator = RuntimeEstimator()
    for seconds in (10, 100, 1000):
        estimator.observe("u", "SFT", 4, seconds)
    one = Job("j", "u", datetime.fromtimestamp(0, UTC), 4)
    assert estimator.remaining(one, 50) == 550 - 50  # median of 100 and 1000, minus 50
    assert estimator.remaining(one, 5000, floor_s=60) == 60  # past all: the floor


class ReferencePlanner(DomainPlanner):
    """The passes as `SchedulerState.plan` runs them, from all running jobs each time (the
    incremental `DomainPlanner` must give the same admissions)."""

    def plan(self, now: float) -> list[str]:
        from datetime import timedelta  # noqa: PLC0415

        from events.domain.simulation.scheduler import FLOOR_S, at  # noqa: PLC0415

        moment = self.now = at(now)
        state = self.state
        if self.easy:
            for job_id, (one, run) in state.running.items():
                if run.expected_end <= moment:
                    left = state.estimator.remaining(
                        one, (moment - run.started_at).total_seconds(), FLOOR_S
                    )
                    end = moment + timedelta(seconds=left)
                    state.running[job_id] = (one, msgspec.structs.replace(run, expected_end=end))
        done = state.plan(moment, explain=False)
        for admission in done.admit:
            state.admit(admission.job.job_id, moment)
        return [a.job.job_id for a in done.admit]

    def finish(self, job_id: str, now: float, runtime: float) -> None:
        from events.domain.simulation.scheduler import at  # noqa: PLC0415

        self.state.finish(job_id, at(now))


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(1, 8), st.integers(0, 40),
                       st.sampled_from("uvw")), max_size=30),
    st.sampled_from(["strict-fifo", "backfill", "reserve", "fair-share"]),
    st.sampled_from([Limits(cap_small=None, cap_big=None), Limits(cap_small=1, cap_big=1),
                     Limits(big_job_gpus=4, cap_small=2, cap_big=1, big_job_reserve=2)]),
)  # fmt: skip
def test_incremental_passes_equal_the_state_s_plan(
    rows: list[tuple[int, int, int, str]], policy: PolicyName, limits: Limits
) -> None:
    jobs = [job(f"j{k:02}", u, at, g, d) for k, (at, g, d, u) in enumerate(rows)]
    fast = simulate(jobs, planner(policy, 8, limits, half_life_hours=0.01), {"*": 8})
    ref = ReferencePlanner(limits, Policy(policy, half_life_hours=0.01), {"*": 8}, epoch=0.0)
    slow = simulate(jobs, ref, {"*": 8})
    assert fast == slow


@settings(max_examples=40, deadline=None)
@given(
    queued=st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 8), st.integers(0, 10**6),
                  st.sampled_from(["h200", "b200"]), st.integers(0, 100)),
        max_size=25,
    ),
    running=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(0, 10**6)),
                     max_size=4),
    policy=st.sampled_from(["strict-fifo", "backfill", "reserve"]),
)  # fmt: skip
def test_a_packed_forecast_gives_the_etas_of_the_direct_one(
    queued: list[tuple[int, int, int, str, int]],
    running: list[tuple[int, int, int]],
    policy: PolicyName,
) -> None:
    """What the ETA forecaster sends its process (`pack_jobs`, `live_etas_packed`) forecasts
    exactly what `live_etas` does from the same jobs."""
    from events.domain.scheduling import Job, RuntimeEstimator  # noqa: PLC0415
    from events.domain.simulation.live import (  # noqa: PLC0415
        LiveJob,
        live_etas,
        live_etas_packed,
        pack_jobs,
        queued_live,
        unpack_etas,
    )

    jobs = [Job(f"q{n}", f"u{u}", datetime.fromtimestamp(t, UTC), g, gpu_type, priority=p)
            for n, (u, g, t, gpu_type, p) in enumerate(queued)]  # fmt: skip
    live = [LiveJob(f"r{n}", f"u{u}", g, float(t), float(t)) for n, (u, g, t) in enumerate(running)]
    estimator = RuntimeEstimator()
    estimator.observe("u1", "SFT", 2, 3600)
    args = ({"h200": 8, "b200": 4}, Limits(cap_small=2), Policy(policy), estimator, 2e6)
    direct = live_etas([queued_live(j) for j in jobs], live, *args)
    assert unpack_etas(live_etas_packed(pack_jobs(jobs, live), *args)) == direct
