"""Fireworks fine-tuning API: client, wire models, error taxonomy (simulator in `.simulator`)."""

from __future__ import annotations

from events.domain.job_events import Kind

from .client import GPU_COUNT_HEADER, FireworksClient
from .errors import (
    AlreadyExists,
    FireworksError,
    NotFound,
    QuotaExhausted,
    Rejected,
    Transient,
    Unauthenticated,
    classify,
)
from .kinds import COLLECTION, ID_PARAM, KINDS, LIST_KEY
from .models import FireworksJob, JobProgress, JobStatus, Quota

__all__ = [
    "COLLECTION",
    "GPU_COUNT_HEADER",
    "ID_PARAM",
    "KINDS",
    "LIST_KEY",
    "AlreadyExists",
    "FireworksClient",
    "FireworksError",
    "FireworksJob",
    "JobProgress",
    "JobStatus",
    "Kind",
    "NotFound",
    "Quota",
    "QuotaExhausted",
    "Rejected",
    "Transient",
    "Unauthenticated",
    "classify",
]
