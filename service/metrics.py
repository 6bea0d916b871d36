"""Prometheus metrics of ftq. The names are a contract with the deploy dashboard."""

from __future__ import annotations

import functools
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
ADMISSIONS = Counter("ftq_admissions_total", "Admission attempts by outcome", ["outcome"])
FIREWORKS_ERRORS = Counter("ftq_fireworks_errors_total", "Fireworks API errors", ["kind"])
TICK_SECONDS = Histogram("ftq_tick_seconds", "Admission loop tick duration")
STREAM_CLIENTS = Gauge("ftq_stream_clients", "Open history stream connections")
IS_LEADER = Gauge("ftq_is_leader", "1 when this process leads admission")
STUCK_JOBS = Gauge("ftq_stuck_jobs", "Jobs running on Fireworks flagged stuck")
SCHEDULER_PAUSED = Gauge("ftq_scheduler_paused", "1 when admission is paused")

UNMATCHED_ROUTE = "<unmatched>"


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
