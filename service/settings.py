"""One typed settings object, read from the environment and `.env` (the environment wins).

Every field is mirrored, with a comment, in `.env.example`."""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
from dotenv import dotenv_values

from events.domain.scheduling import GPU_TYPES, POLICIES, Limits, PolicyName
from events.domain.scheduling import Policy as SchedulingPolicy

REAL_FIREWORKS_URL = "https://api.fireworks.ai"
SIMULATOR = "simulator"  # FIREWORKS_BASE_URL=simulator runs the built-in Fireworks simulator
Policy = PolicyName
MAX_CAP = 1 << 30
NO_CAP = "none"  # FTQ_USER_CAP*=none: no hard cap
CAP_FIELDS = ("user_cap", "user_cap_small", "user_cap_big")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    fireworks_api_key: str | None = msgspec.field(default=None)
    fireworks_account_id: str = "ftq"
    fireworks_base_url: str = REAL_FIREWORKS_URL
    fireworks_gpu_quota: int | None = None
    fireworks_quota_id: str | None = None
    user_cap: int | None = 1
    reconcile_seconds: float = 15.0
    policy: Policy = "strict-fifo"
    # Size classes (FTQ_BIG_JOB_GPUS: 0 = off) and their per-user caps (None: no cap;
    # FTQ_USER_CAP_SMALL unset: FTQ_USER_CAP).
    big_job_gpus: int = 0
    user_cap_small: int | msgspec.UnsetType | None = msgspec.UNSET
    user_cap_big: int | None = 1
    big_job_reserve: int = 0
    fair_share_half_life_hours: float = 168.0
    max_wait_hours: float = 72.0
    priority_aging_hours: float = 6.0
    default_runtime_minutes: float = 120.0
    default_gpu_type: str = "h200"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path.home() / ".local" / "share" / "ftq"
    log_level: str = "info"
    log_format: Literal["json", "console"] = "json"
    max_body_bytes: int = 1024 * 1024
    workers: int = 1
    # Payload secrets at rest (service.secrets): the master key (base64 of 32 bytes; unset: a
    # key file in data_dir), the key being rotated away from, and how long an ended job keeps
    # its data key before it is shredded.
    secret_key: str | None = None
    secret_key_old: str | None = None
    secret_retention_days: float = 7.0
    webhook_max_attempts: int = 12
    webhook_allow_private: bool = False
    max_queued_per_user: int = 1000  # 0: no limit
    submit_rate_per_minute: int = 600  # 0: no limit
    max_runtime_hours: float | None = None
    stuck_minutes: float = 60.0
    stalled_minutes: float = 240.0

    @property
    def max_runtime_minutes(self) -> float | None:
        """The default runtime limit in minutes (None: no limit)."""
        return None if self.max_runtime_hours is None else self.max_runtime_hours * 60

    @property
    def default_cap(self) -> int:
        """The default cap as a number (no cap: larger than any queue)."""
        return MAX_CAP if self.cap_small is None else self.cap_small

    @property
    def cap_small(self) -> int | None:
        if isinstance(self.user_cap_small, msgspec.UnsetType):
            return self.user_cap
        return self.user_cap_small

    def limits(self, user_caps: Mapping[tuple[str, str], int | None] | None = None) -> Limits:
        """The size classes and caps in force, with per-(user, class) overrides."""
        return Limits(
            big_job_gpus=self.big_job_gpus,
            cap_small=self.cap_small,
            cap_big=self.user_cap_big,
            big_job_reserve=self.big_job_reserve,
            user_caps=user_caps or {},
        )

    def scheduling_policy(self, weights: Mapping[str, float] | None = None) -> SchedulingPolicy:
        return SchedulingPolicy(
            name=self.policy,
            half_life_hours=self.fair_share_half_life_hours,
            max_wait_hours=self.max_wait_hours,
            aging_hours=self.priority_aging_hours,
            weights=weights or {},
        )

    @property
    def uses_simulator(self) -> bool:
        return self.fireworks_base_url == SIMULATOR

    def __repr__(self) -> str:  # never print the key
        key = "***" if self.fireworks_api_key else None
        return f"Settings(fireworks_account_id={self.fireworks_account_id!r}, key={key})"

    def check_production(self) -> None:
        """Refuse to talk to the real Fireworks without a key."""
        if not self.uses_simulator and not self.fireworks_api_key:
            raise SettingsError(
                "FIREWORKS_API_KEY is not set: ftq cannot reach Fireworks without it. "
                "Set FIREWORKS_API_KEY (and FIREWORKS_ACCOUNT_ID), or set "
                "FIREWORKS_BASE_URL=simulator to run against the built-in simulator."
            )


# setting name -> environment variable
ENV_NAMES: dict[str, str] = {
    "database_url": "DATABASE_URL",
    "fireworks_api_key": "FIREWORKS_API_KEY",
    "fireworks_account_id": "FIREWORKS_ACCOUNT_ID",
    "fireworks_base_url": "FIREWORKS_BASE_URL",
    "fireworks_gpu_quota": "FIREWORKS_GPU_QUOTA",
    "fireworks_quota_id": "FIREWORKS_QUOTA_ID",
    "user_cap": "FTQ_USER_CAP",
    "reconcile_seconds": "FTQ_RECONCILE_SECONDS",
    "policy": "FTQ_POLICY",
    "big_job_gpus": "FTQ_BIG_JOB_GPUS",
    "user_cap_small": "FTQ_USER_CAP_SMALL",
    "user_cap_big": "FTQ_USER_CAP_BIG",
    "big_job_reserve": "FTQ_BIG_JOB_RESERVE",
    "fair_share_half_life_hours": "FTQ_FAIR_SHARE_HALF_LIFE_HOURS",
    "max_wait_hours": "FTQ_MAX_WAIT_HOURS",
    "priority_aging_hours": "FTQ_PRIORITY_AGING_HOURS",
    "default_runtime_minutes": "FTQ_DEFAULT_RUNTIME_MINUTES",
    "default_gpu_type": "FTQ_DEFAULT_GPU_TYPE",
    "host": "FTQ_HOST",
    "port": "FTQ_PORT",
    "data_dir": "FTQ_DATA_DIR",
    "log_level": "FTQ_LOG_LEVEL",
    "log_format": "FTQ_LOG_FORMAT",
    "max_body_bytes": "FTQ_MAX_BODY_BYTES",
    "workers": "FTQ_WORKERS",
    "secret_key": "FTQ_SECRET_KEY",
    "secret_key_old": "FTQ_SECRET_KEY_OLD",
    "secret_retention_days": "FTQ_SECRET_RETENTION_DAYS",
    "webhook_max_attempts": "FTQ_WEBHOOK_MAX_ATTEMPTS",
    "webhook_allow_private": "FTQ_WEBHOOK_ALLOW_PRIVATE",
    "max_queued_per_user": "FTQ_MAX_QUEUED_PER_USER",
    "submit_rate_per_minute": "FTQ_SUBMIT_RATE_PER_MINUTE",
    "max_runtime_hours": "FTQ_MAX_RUNTIME_HOURS",
    "stuck_minutes": "FTQ_STUCK_MINUTES",
    "stalled_minutes": "FTQ_STALLED_MINUTES",
}


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Build `Settings` from `.env` then the environment; a bad value names its variable."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    raw: dict[str, str | None] = {
        field: values[env] for field, env in ENV_NAMES.items() if values.get(env, "") != ""
    }
    for field in CAP_FIELDS:
        given = raw.get(field)
        if given is not None and given.strip().lower() == NO_CAP:
            raw[field] = None
    if raw.get("policy") is not None and raw["policy"] not in POLICIES:
        raise SettingsError(
            f"FTQ_POLICY must be one of {', '.join(POLICIES)}, not {raw['policy']!r}"
        )
    data_dir = raw.pop("data_dir", None)  # msgspec does not convert str to Path
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_name_the_variable(str(exc))) from None
    path = Path(data_dir) if data_dir is not None else settings.data_dir
    settings = msgspec.structs.replace(settings, data_dir=path.expanduser())
    _check_scheduling(settings)
    if settings.reconcile_seconds <= 0:
        raise SettingsError("FTQ_RECONCILE_SECONDS must be positive")
    if settings.fireworks_gpu_quota is not None and settings.fireworks_gpu_quota < 0:
        raise SettingsError("FIREWORKS_GPU_QUOTA must be 0 or more")
    if settings.workers < 1:
        raise SettingsError("FTQ_WORKERS must be 1 or more")
    if settings.secret_retention_days < 0:
        raise SettingsError("FTQ_SECRET_RETENTION_DAYS must be 0 or more")
    if settings.webhook_max_attempts < 1:
        raise SettingsError("FTQ_WEBHOOK_MAX_ATTEMPTS must be 1 or more")
    if settings.secret_key is not None:
        _check_secret_key(settings.secret_key)
    if settings.max_queued_per_user < 0:
        raise SettingsError("FTQ_MAX_QUEUED_PER_USER must be 0 (no limit) or more")
    if settings.submit_rate_per_minute < 0:
        raise SettingsError("FTQ_SUBMIT_RATE_PER_MINUTE must be 0 (no limit) or more")
    if settings.max_runtime_hours is not None and not _positive(settings.max_runtime_hours):
        raise SettingsError("FTQ_MAX_RUNTIME_HOURS must be a positive number (unset: no limit)")
    for value, env in ((settings.stuck_minutes, "FTQ_STUCK_MINUTES"),
                       (settings.stalled_minutes, "FTQ_STALLED_MINUTES")):  # fmt: skip
        if not _positive(value):
            raise SettingsError(f"{env} must be a positive number")
    return settings


def policy_record(settings: Settings) -> dict[str, Any]:
    """The policy's settings as recorded in the log (scheduler.policy_in_force)."""
    return {
        "big_job_gpus": settings.big_job_gpus,
        "user_cap_small": settings.cap_small,
        "user_cap_big": settings.user_cap_big,
        "big_job_reserve": settings.big_job_reserve,
        "fair_share_half_life_hours": settings.fair_share_half_life_hours,
        "max_wait_hours": settings.max_wait_hours,
        "priority_aging_hours": settings.priority_aging_hours,
        "default_runtime_minutes": settings.default_runtime_minutes,
    }


def _check_scheduling(settings: Settings) -> None:
    for field in CAP_FIELDS:
        value = getattr(settings, field)
        if isinstance(value, int) and value < 0:
            raise SettingsError(f"{ENV_NAMES[field]} must be 0 or more, or {NO_CAP!r}")
    for field in ("big_job_gpus", "big_job_reserve"):
        if getattr(settings, field) < 0:
            raise SettingsError(f"{ENV_NAMES[field]} must be 0 or more")
    quota = settings.fireworks_gpu_quota
    if quota is not None and settings.big_job_reserve > quota:
        raise SettingsError(
            f"FTQ_BIG_JOB_RESERVE ({settings.big_job_reserve}) is larger than "
            f"FIREWORKS_GPU_QUOTA ({quota})"
        )
    for field in ("fair_share_half_life_hours", "default_runtime_minutes"):
        if not getattr(settings, field) > 0:
            raise SettingsError(f"{ENV_NAMES[field]} must be positive")
    for field in ("max_wait_hours", "priority_aging_hours"):
        if not getattr(settings, field) >= 0:
            raise SettingsError(f"{ENV_NAMES[field]} must be 0 or more (0: off)")
    if settings.default_gpu_type not in GPU_TYPES:
        raise SettingsError(
            f"FTQ_DEFAULT_GPU_TYPE must be one of {', '.join(GPU_TYPES)}, "
            f"not {settings.default_gpu_type!r}"
        )


def _check_secret_key(encoded: str) -> None:
    """FTQ_SECRET_KEY must be base64 of 32 bytes; the message never repeats the value."""
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError("FTQ_SECRET_KEY is not base64 (expected 32 random bytes)") from None
    if len(key) != 32:
        raise SettingsError(f"FTQ_SECRET_KEY must decode to 32 bytes, not {len(key)}")


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _name_the_variable(message: str) -> str:
    for field, env in ENV_NAMES.items():
        if f"`$.{field}`" in message:
            return f"{env}: {message.split(' - at ', maxsplit=1)[0]}"
    return message
