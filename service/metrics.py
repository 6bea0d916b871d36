"""Prometheus metrics of ftq. The names are a contract with the deploy dashboard."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "ftq_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "ftq_http_request_seconds",
    "HTTP request duration",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUEUE_DEPTH = Gauge("ftq_queue_depth", "Jobs QUEUED")
GPUS_QUOTA = Gauge("ftq_gpus_quota", "Training GPU quota (limit) last seen")
GPUS_IN_USE = Gauge("ftq_gpus_in_use", "Training GPUs in use last seen")
GPUS_AVAILABLE = Gauge("ftq_gpus_available", "Training GPUs free last seen")
JOBS_IN_PROGRESS = Gauge("ftq_jobs_in_progress", "Jobs in PROGRESS")
# Counted when this process records the event, so the sum over replicas equals the log:
# admitted = job.admitted, returned = job.returned_to_queue (no quota), rejected = job.rejected
# (Fireworks refused the payload: the job FAILs).
ADMISSIONS = Counter(
    "ftq_admissions_total", "Admission outcomes recorded: admitted, returned, rejected", ["outcome"]
)
# SUCCESS = job.succeeded, FAIL = job.failed + job.rejected, CANCELLED = job.cancelled.
JOBS_FINISHED = Counter(
    "ftq_jobs_finished_total", "Jobs that reached a terminal state, by state", ["state"]
)
# Every Fireworks reply that is an error (or a call that got no reply), retried attempts
# included; `kind` is the error class ftq acts on (service.fireworks.errors).
FIREWORKS_ERRORS = Counter(
    "ftq_fireworks_errors_total", "Fireworks API calls that failed, by kind", ["kind"]
)
TICK_SECONDS = Histogram("ftq_tick_seconds", "Admission loop tick duration")
STREAM_CLIENTS = Gauge("ftq_stream_clients", "Open history stream connections")
IS_LEADER = Gauge("ftq_is_leader", "1 when this process leads admission")
WEBHOOK_DELIVERIES = Counter(
    "ftq_webhook_deliveries_total", "Webhook delivery attempts by outcome", ["outcome"]
)
WEBHOOKS_FAILING = Gauge("ftq_webhooks_failing", "Webhook subscriptions marked failing")
STUCK_JOBS = Gauge("ftq_stuck_jobs", "Jobs running on Fireworks flagged stuck")
SCHEDULER_PAUSED = Gauge("ftq_scheduler_paused", "1 when admission is paused")
POLICY = Gauge("ftq_admission_policy", "1 for the admission policy in force", ["policy"])

UNMATCHED_ROUTE = "<unmatched>"

_BY_EVENT: dict[str, tuple[Any, ...]] = {
    "job.admitted": (ADMISSIONS.labels(outcome="admitted"),),
    "job.returned_to_queue": (ADMISSIONS.labels(outcome="returned"),),
    "job.rejected": (ADMISSIONS.labels(outcome="rejected"), JOBS_FINISHED.labels(state="FAIL")),
    "job.failed": (JOBS_FINISHED.labels(state="FAIL"),),
    "job.succeeded": (JOBS_FINISHED.labels(state="SUCCESS"),),
    "job.cancelled": (JOBS_FINISHED.labels(state="CANCELLED"),),
}


def count_recorded(event_types: Iterable[str]) -> None:
    """Count the job events this process has just recorded (after the commit)."""
    for event_type in event_types:
        for counter in _BY_EVENT.get(event_type, ()):
            counter.inc()


def count_fireworks_error(kind: str) -> None:
    FIREWORKS_ERRORS.labels(kind=kind).inc()


@functools.lru_cache(maxsize=1024)
def _request_series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The labelled children of one (route, method, status), looked up once: `.labels()` on
    every request cost a measurable share of a request. Routes are path templates (or one
    "unmatched" value); bounded all the same, since the method comes from the client."""
    return (
        HTTP_REQUESTS.labels(route=route, method=method, status=str(status)),
        HTTP_SECONDS.labels(route=route),
    )


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    count, latency = _request_series(route, method, status)
    count.inc()
    latency.observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The default registry in Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
