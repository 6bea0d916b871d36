"""`ftq simulate --from-log`: a deployment's own history, folded from its event log, as a
workload trace.

Each job is its real submission (user, kind, gpu_count, created_at); its duration is the
observed runtime (admission started → terminal event) when it has finished, else an
estimate from the runtimes observed in the log: the estimator's remaining time for a job
still running at `now`, its estimate for a job still queued. A job cancelled while queued
never used a GPU and is left out. The quota and the policy are the ones the admission loop
recorded on its last admission; per-user caps the ones set in the log."""

from __future__ import annotations

import msgspec

from events.domain.codec import AnyEvent
from events.domain.directory_events import UserCapSet, UserShareSet
from events.domain.job_events import (
    AdmissionStarted,
    Cancelled,
    Failed,
    JobSubmitted,
    RejectedByFireworks,
    ReturnedToQueue,
    Succeeded,
)
from events.domain.scheduling import DEFAULT_RUNTIME_MINUTES, Job, RuntimeEstimator
from events.domain.simulation.engine import JobRun, Outcome
from events.domain.simulation.scheduler import at as _when
from events.domain.simulation.trace import TraceJob

RELEVANT = frozenset(
    {
        "job.submitted",
        "job.admission_started",
        "job.returned_to_queue",
        "job.rejected",
        "job.cancelled",
        "job.succeeded",
        "job.failed",
        "user.cap_set",
        "user.share_set",
    }
)  # the event types the fold reads; a reader may skip decoding the others
FLOOR_S = 60.0


class LoggedJob(msgspec.Struct):
    job_id: str
    user_id: str
    kind: str
    gpu_count: int
    created_at: float  # seconds since the epoch
    admitted_at: float | None = None  # the last admission that started (None: queued)
    ended_at: float | None = None  # terminal event
    state: str = "QUEUED"
    max_runtime_minutes: int | None = None
    gpu_type: str = "h200"
    priority: int = 50


class History(msgspec.Struct):
    jobs: dict[str, LoggedJob] = msgspec.field(default_factory=dict)  # in submission order
    quotas: dict[str, int] = msgspec.field(default_factory=dict)  # per GPU type, as the
    policy: str | None = None  # last admission of that type (the last one) recorded
    caps: dict[tuple[str, str], int | None] = msgspec.field(default_factory=dict)  # (user,
    weights: dict[str, float] = msgspec.field(default_factory=dict)  # class) -> cap; shares
    last: float = 0.0  # the latest time of an event folded in

    def apply(self, stream_id: str, event: AnyEvent) -> None:
        """Fold one event of the log (in log order) into the history."""
        self.last = max(self.last, event.at.timestamp())
        if isinstance(event, UserCapSet):
            key = (event.user_id, event.size_class)
            if event.unlimited:
                self.caps[key] = None
            elif event.cap is None:
                self.caps.pop(key, None)
            else:
                self.caps[key] = event.cap
            return
        if isinstance(event, UserShareSet):
            if event.share is None:
                self.weights.pop(event.user_id, None)
            else:
                self.weights[event.user_id] = event.share
            return
        if isinstance(event, JobSubmitted):
            self.jobs[event.job_id] = LoggedJob(
                event.job_id, event.user_id, event.kind, event.gpu_count, event.at.timestamp(),
                max_runtime_minutes=event.max_runtime_minutes, gpu_type=event.gpu_type,
                priority=event.priority,
            )  # fmt: skip
            return
        job = self.jobs.get(stream_id)
        if job is None:
            return
        at = event.at.timestamp()
        if isinstance(event, AdmissionStarted):
            job.admitted_at, job.state = at, "PROGRESS"
            self.quotas[event.reason.gpu_type] = event.reason.quota
            self.policy = event.reason.policy
        elif isinstance(event, ReturnedToQueue):
            job.admitted_at, job.state = None, "QUEUED"
        elif isinstance(event, Succeeded):
            job.ended_at, job.state = at, "SUCCESS"
        elif isinstance(event, Failed | RejectedByFireworks):
            job.ended_at, job.state = at, "FAIL"
        elif isinstance(event, Cancelled):
            job.ended_at, job.state = at, "CANCELLED"


class LogTrace(msgspec.Struct, frozen=True):
    jobs: list[TraceJob]  # in submission order
    recorded: Outcome  # what really happened: real admissions, the same durations
    finished: int  # jobs whose duration is observed
    estimated_running: int  # still running at `now`: observed so far + estimated remaining
    estimated_queued: int  # still queued at `now`: estimated
    left_out_cancelled: int  # cancelled before admission


def _planner_job(job: LoggedJob) -> Job:
    return Job(
        job.job_id,
        job.user_id,
        _when(job.created_at),
        job.gpu_count,
        job.gpu_type,
        job.kind,
        job.priority,
        job.max_runtime_minutes,
    )


def log_trace(
    history: History,
    now: float,
    *,
    since: float | None = None,
    until: float | None = None,
    default_runtime_minutes: float = DEFAULT_RUNTIME_MINUTES,
) -> LogTrace:
    """The jobs submitted in [`since`, `until`) as a trace, seen at `now` (the end of the
    history: jobs not finished by then get estimated durations)."""
    chosen = [
        j
        for j in history.jobs.values()
        if (since is None or j.created_at >= since) and (until is None or j.created_at < until)
    ]
    estimator = RuntimeEstimator(default_runtime_minutes)
    for j in history.jobs.values():
        if j.admitted_at is not None and j.ended_at is not None:
            estimator.observe(j.user_id, j.kind, j.gpu_count, j.ended_at - j.admitted_at)
    jobs: list[TraceJob] = []
    runs: list[JobRun] = []
    never: list[TraceJob] = []
    counts = {"finished": 0, "running": 0, "queued": 0, "cancelled": 0}
    for j in chosen:
        if j.admitted_at is None and j.ended_at is not None:
            counts["cancelled"] += 1
            continue
        if j.admitted_at is not None and j.ended_at is not None:
            duration, bucket = j.ended_at - j.admitted_at, "finished"
        elif j.admitted_at is not None:
            elapsed = max(0.0, now - j.admitted_at)
            left = estimator.remaining(_planner_job(j), elapsed, FLOOR_S)
            duration, bucket = elapsed + left, "running"
        else:
            duration, bucket = estimator.estimate(_planner_job(j)), "queued"
        counts[bucket] += 1
        trace_job = TraceJob(j.job_id, j.user_id, j.created_at, j.gpu_count, max(0.0, duration),
                             kind=j.kind, gpu_type=j.gpu_type, priority=j.priority,
                             max_runtime_minutes=j.max_runtime_minutes)  # fmt: skip
        jobs.append(trace_job)
        if j.admitted_at is None:
            never.append(trace_job)
        else:
            runs.append(JobRun(trace_job, j.admitted_at, j.admitted_at + trace_job.duration_s))
    recorded = Outcome(runs, [], never, [])
    return LogTrace(jobs, recorded, counts["finished"], counts["running"], counts["queued"],
                    counts["cancelled"])  # fmt: skip
