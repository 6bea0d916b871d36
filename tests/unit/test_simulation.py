"""The simulator: hand-made traces with known answers, an independent strict-FIFO
simulator, determinism, metrics by definition, and bad traces."""

from __future__ import annotations

import heapq
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.domain.simulation import TraceError, metrics, parse_trace, simulate
from events.domain.simulation.metrics import jain, nearest_rank
from events.domain.simulation.trace import TraceJob
from service.simulation.live_planner import LivePlanner

HEADER = "job_id,user,submitted_at,gpu_count,duration_s\n"
TRACE = Path(__file__).parents[2] / "bench" / "data" / "philly-2017-sep-oct.csv"


def job(job_id: str, user: str, at: float, gpus: int, duration: float) -> TraceJob:
    return TraceJob(job_id=job_id, user=user, submitted_at=at, gpu_count=gpus, duration_s=duration)


def starts(jobs: list[TraceJob], quota: int, policy: str = "strict-fifo", cap: int | None = None):
    out = simulate(jobs, LivePlanner(policy, quota, cap), {"*": quota})
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
            "--policy", "strict-fifo", "--policy", "backfill", "--json"]  # fmt: skip
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
    _, records = measure_etas(jobs, LivePlanner("strict-fifo", 8, None), {"*": 8},
                                default_runtime_s=7200, floor_s=0)  # fmt: skip
    assert [r.job_id for r in records] == ["j1", "j2", "j3", "j4"]  # j0 started at once
    assert all(r.eta == r.start for r in records)
    assert accuracy(records).ftq_median_abs_error_h == 0
    assert accuracy(records).naive_median_abs_error_h > 0
