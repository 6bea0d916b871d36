"""`--from-log`'s fold of the event log into a workload (events.domain.simulation.history)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.domain.directory_events import UserCapSet
from events.domain.job_events import (
    AdmissionReason,
    AdmissionStarted,
    Cancelled,
    JobSubmitted,
    ReturnedToQueue,
    Succeeded,
)
from events.domain.simulation.history import History, log_trace

T0 = datetime(2026, 11, 1, tzinfo=UTC)
REASON = AdmissionReason(policy="backfill", quota=16, in_use=0, available=16, queue_position=1)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def submitted(job_id: str, s: float, user: str = "u", gpus: int = 4) -> JobSubmitted:
    return JobSubmitted(at=at(s), job_id=job_id, user_id=user, user_email="u@x", kind="SFT",
                        display_name=None, gpu_count=gpus, fireworks_payload={})  # fmt: skip


def started(s: float) -> AdmissionStarted:
    return AdmissionStarted(at=at(s), fireworks_job_id="f", fireworks_job_name="n", reason=REASON)


def history() -> History:
    h = History()
    for stream, event in [
        ("", UserCapSet(at=at(0), user_id="u", cap=3)),
        ("a", submitted("a", 0)), ("a", started(10)),
        ("a", Succeeded(at=at(1010), fireworks_state="C")),
        ("b", submitted("b", 5)), ("b", started(20)),
        ("b", ReturnedToQueue(at=at(21), message="q")),
        ("b", started(1010)),  # still running
        ("c", submitted("c", 30)), ("c", Cancelled(at=at(40), reason="x")),  # while queued
        ("d", submitted("d", 50)),  # still queued
        ("e", submitted("e", 5000)),
    ]:  # fmt: skip
        h.apply(stream, event)
    return h


def test_the_fold_keeps_submissions_admissions_ends_quota_policy_and_caps() -> None:
    h = history()
    assert (h.quotas, h.policy, h.caps) == ({"h200": 16}, "backfill", {("u", "small"): 3})
    assert h.jobs["b"].admitted_at == at(1010).timestamp() and h.jobs["b"].state == "PROGRESS"
    assert h.jobs["c"].admitted_at is None and h.jobs["c"].state == "CANCELLED"


def test_durations_observed_or_estimated_and_queued_cancels_left_out() -> None:
    trace = log_trace(history(), at(1510).timestamp(), until=at(1000).timestamp())
    by_id = {j.job_id: j for j in trace.jobs}
    assert sorted(by_id) == ["a", "b", "d"]  # c cancelled while queued, e after --until
    assert by_id["a"].duration_s == 1000  # observed: admission started -> terminal
    # b has run 500 s; a's 1000 s is the only longer observed runtime (same user, kind, size)
    assert by_id["b"].duration_s == 1000
    assert by_id["d"].duration_s == 1000  # queued: the estimate
    assert (trace.finished, trace.estimated_running, trace.estimated_queued) == (1, 1, 1)
    assert trace.left_out_cancelled == 1
    recorded = {r.job.job_id: r.start for r in trace.recorded.runs}
    assert recorded == {"a": at(10).timestamp(), "b": at(1010).timestamp()}
    assert [j.job_id for j in trace.recorded.never_started] == ["d"]
    since = log_trace(history(), at(6000).timestamp(), since=at(40).timestamp())
    assert [j.job_id for j in since.jobs] == ["d", "e"]
