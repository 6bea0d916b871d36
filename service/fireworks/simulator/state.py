"""The simulator's in-memory account: jobs, tombstones and quotas, with an injectable clock."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events.domain.job_events import Kind

from .jobs import RESUMABLE_STATES, TERMINAL_STATES, Override, SimJob, rfc3339

ID_RULE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
GPU_QUOTA = "training-h200-count"
DEFAULT_GPU_TYPE = "h200"


def gpu_quota_id(gpu_type: str) -> str:
    """The quota a job of `gpu_type` counts against: `training-<type>-count`."""
    return f"training-{gpu_type}-count"


def quota_gpu_type(quota_id: str) -> str | None:
    if quota_id.startswith("training-") and quota_id.endswith("-count"):
        return quota_id.removeprefix("training-").removesuffix("-count")
    return None


# google.rpc code name -> (numeric code, HTTP status), fireworks-api.md §6.
CODES: dict[str, tuple[int, int]] = {
    "INVALID_ARGUMENT": (3, 400),
    "FAILED_PRECONDITION": (9, 400),
    "UNAUTHENTICATED": (16, 401),
    "PERMISSION_DENIED": (7, 403),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "RESOURCE_EXHAUSTED": (8, 429),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
}


class SimError(Exception):
    """A gRPC-style failure the routes turn into `{code, message, details}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return CODES[self.code][1]

    def body(self) -> dict[str, Any]:
        return {"code": CODES[self.code][0], "message": self.message, "details": []}


@dataclass
class SimQuota:
    """A quota row; `usage` of the GPU quota is computed from the jobs."""

    value: int
    max_value: int
    usage: float = 0.0
    update_time: float = 0.0


@dataclass
class SimState:
    """Everything the fake Fireworks account holds; all methods take the time from `now`."""

    account_id: str
    quota: int
    job_seconds: float
    now: Callable[[], float]
    default_gpus: int = 4
    cancel_seconds: float = 1.0
    jobs: dict[str, SimJob] = field(default_factory=dict)
    quotas: dict[str, SimQuota] = field(default_factory=dict)
    create_requests: dict[str, int] = field(default_factory=dict)
    jobs_created: dict[str, int] = field(default_factory=dict)
    cancel_requests: dict[str, int] = field(default_factory=dict)
    max_usage_seen: float = 0.0  # of the default type (h200)
    max_usage_by_type: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.now()
        self.quotas.setdefault(GPU_QUOTA, SimQuota(self.quota, max(self.quota, 8), 0.0, t))
        self.quotas.setdefault("serverless-inference-rpm", SimQuota(6000, 6000, 0.0, t))
        self.quotas.setdefault("monthly-spend-usd", SimQuota(1000, 50000, 0.0, t))

    # -- usage --------------------------------------------------------------------------

    def usage(self, gpu_type: str = DEFAULT_GPU_TYPE) -> int:
        """GPUs of `gpu_type` held right now by non-terminal, non-deleted jobs."""
        t = self.now()
        return sum(
            job.gpus for job in self.jobs.values() if job.gpu_type == gpu_type and job.holds_gpus(t)
        )

    def refresh_usage(self) -> float:
        """Sync every GPU quota's `usage` and `updateTime` with the jobs of its type; track
        the peaks. Returns the default type's usage."""
        for quota_id, quota in self.quotas.items():
            gpu_type = quota_gpu_type(quota_id)
            if gpu_type is None:
                continue
            usage = float(self.usage(gpu_type))
            if usage != quota.usage:
                quota.usage, quota.update_time = usage, self.now()
            peak = self.max_usage_by_type.get(gpu_type, 0.0)
            self.max_usage_by_type[gpu_type] = max(peak, usage)
        self.max_usage_seen = max(self.max_usage_seen, float(self.usage()))
        return float(self.usage())

    # -- jobs ---------------------------------------------------------------------------

    def live_job(self, job_id: str) -> SimJob:
        job = self.jobs.get(job_id)
        if job is None or job.deleted:
            raise SimError("NOT_FOUND", f"job {job_id} not found")
        return job

    def create(
        self,
        kind: Kind,
        job_id: str | None,
        payload: dict[str, Any],
        gpus: int | None = None,
        *,
        external: bool = False,
        gpu_type: str = DEFAULT_GPU_TYPE,
    ) -> SimJob:
        """Validate, check quota, store; a reused id (even a deleted one) is ALREADY_EXISTS."""
        job_id = job_id or str(uuid.uuid4())
        self.create_requests[job_id] = self.create_requests.get(job_id, 0) + 1
        validate(kind, job_id, payload)
        if job_id in self.jobs:
            raise SimError("ALREADY_EXISTS", f"job ID {job_id!r} already exists")
        gpus = self.default_gpus if gpus is None else gpus
        self.check_quota(gpus, gpu_type)
        t = self.now()
        job = SimJob(kind, job_id, self.account_id, payload, gpus, t, t, self.job_seconds)
        job.external = external
        job.gpu_type = gpu_type
        self.jobs[job_id] = job
        self.jobs_created[job_id] = self.jobs_created.get(job_id, 0) + 1
        self.refresh_usage()
        return job

    def delete(self, job_id: str) -> None:
        """Tombstone the job: it vanishes from GET/list and frees its GPUs; the id stays taken."""
        self.live_job(job_id).deleted = True
        self.refresh_usage()

    def cancel(self, job_id: str) -> None:
        """CANCELLING now, CANCELLED after `cancel_seconds`; terminal jobs are refused."""
        self.cancel_requests[job_id] = self.cancel_requests.get(job_id, 0) + 1
        job = self.live_job(job_id)
        t = self.now()
        state = job.state_at(t)
        if state in TERMINAL_STATES or state == "JOB_STATE_CANCELLING":
            raise SimError("FAILED_PRECONDITION", f"job {job_id} is {state}; cannot cancel")
        job.script.append(Override(t, "JOB_STATE_CANCELLING"))
        job.script.append(Override(t + self.cancel_seconds, "JOB_STATE_CANCELLED", "CANCELLED"))
        self.refresh_usage()

    def resume(self, job_id: str) -> SimJob:
        """FAILED, CANCELLED or PAUSED go back to PENDING and run again, if the quota allows."""
        job = self.live_job(job_id)
        t = self.now()
        state = job.state_at(t)
        if state not in RESUMABLE_STATES:
            raise SimError("FAILED_PRECONDITION", f"job {job_id} is {state}; cannot resume")
        if not job.holds_gpus(t):
            self.check_quota(job.gpus, job.gpu_type)
        job.script.clear()
        job.run_start = t - 0.05 * job.job_seconds  # re-enter the timeline at PENDING
        self.refresh_usage()
        return job

    def check_quota(self, gpus: int, gpu_type: str = DEFAULT_GPU_TYPE) -> None:
        """RESOURCE_EXHAUSTED, in Fireworks' words, if `gpus` more of `gpu_type` would
        exceed the `value` of its `training-<type>-count` quota (a type the account has no
        quota for has 0)."""
        quota_id = gpu_quota_id(gpu_type)
        quota = self.quotas.get(quota_id)
        in_use, limit = self.usage(gpu_type), (quota.value if quota else 0)
        if in_use + gpus > limit:
            raise SimError(
                "RESOURCE_EXHAUSTED",
                f"{quota_id} for account {self.account_id}, in use: {in_use}, quota: {limit}",
            )

    def set_outcome(self, job_id: str, state: str, code: str = "OK", message: str = "") -> None:
        """Force the job into `state` now (FAILED, PAUSED, an unknown future state, ...)."""
        job = self.live_job(job_id)
        if code == "OK" and state == "JOB_STATE_FAILED":
            code = "INTERNAL"
        t = self.now()
        job.script = [step for step in job.script if step.at <= t]
        job.script.append(Override(t, state, code, message))
        self.refresh_usage()

    def park(self, job_id: str, state: str) -> None:
        """Hold the job in `state` (e.g. JOB_STATE_PENDING: no GPUs free on Fireworks' side)
        with its progress frozen, until `release`."""
        self.set_outcome(job_id, state)

    def release(self, job_id: str) -> None:
        """Let a parked job go on from where it was parked: its timeline resumes, shifted by
        the time it spent parked."""
        job = self.live_job(job_id)
        t = self.now()
        parked = [step for step in job.script if step.at <= t]
        if not parked:
            return
        job.run_start += t - parked[0].at
        job.script = [step for step in job.script if step.at > t]
        self.refresh_usage()

    def visible_jobs(self, kind: Kind) -> list[SimJob]:
        return sorted(
            (j for j in self.jobs.values() if j.kind == kind and not j.deleted),
            key=lambda j: j.name,
        )

    # -- quotas -------------------------------------------------------------------------

    def quota_view(self, quota_id: str) -> dict[str, Any]:
        quota = self.quotas.get(quota_id)
        if quota is None:
            raise SimError("NOT_FOUND", f"quota {quota_id} not found")
        if quota_gpu_type(quota_id) is not None:
            self.refresh_usage()
        return {
            "name": f"accounts/{self.account_id}/quotas/{quota_id}",
            "value": str(quota.value),
            "maxValue": str(quota.max_value),
            "usage": float(quota.usage),
            "updateTime": rfc3339(quota.update_time),
        }

    def patch_quota(self, quota_id: str, body: dict[str, Any], allow_missing: bool) -> None:
        """Set `value`/`maxValue`; the value may not exceed the max."""
        existing = self.quotas.get(quota_id)
        if existing is None and not allow_missing:
            raise SimError("NOT_FOUND", f"quota {quota_id} not found")
        quota = existing or SimQuota(0, 0, 0.0, self.now())
        try:
            value = int(body.get("value", quota.value))
            max_value = int(body.get("maxValue", quota.max_value if existing else value))
        except (TypeError, ValueError) as exc:
            raise SimError("INVALID_ARGUMENT", f"invalid quota value: {exc}") from None
        if value > max_value or value < 0:
            raise SimError("INVALID_ARGUMENT", f"value {value} must be in [0, {max_value}]")
        quota.value, quota.max_value, quota.update_time = value, max_value, self.now()
        self.quotas[quota_id] = quota
        if quota_id == GPU_QUOTA:
            self.quota = value


def validate(kind: Kind, job_id: str, payload: dict[str, Any]) -> None:
    """The create-time checks of fireworks-api.md §9.3."""
    if not ID_RULE.match(job_id):
        raise SimError(
            "INVALID_ARGUMENT", f"invalid job ID {job_id!r}: must match {ID_RULE.pattern}"
        )
    if not payload.get("dataset"):
        raise SimError("INVALID_ARGUMENT", "dataset is required")
    if kind == "RFT" and not payload.get("evaluator"):
        raise SimError("INVALID_ARGUMENT", "evaluator is required")
    if kind == "SFT" and bool(payload.get("baseModel")) == bool(payload.get("warmStartFrom")):
        raise SimError("INVALID_ARGUMENT", "exactly one of baseModel or warmStartFrom is required")
    if kind == "DPO":
        config = payload.get("trainingConfig")
        config = config if isinstance(config, dict) else {}
        if not (
            config.get("baseModel") or config.get("warmStartFrom") or payload.get("warmStartFrom")
        ):
            raise SimError("INVALID_ARGUMENT", "trainingConfig.baseModel or warmStartFrom required")
