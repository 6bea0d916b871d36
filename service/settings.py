"""One typed settings object, read from the environment and `.env` (the environment wins).

Every field is mirrored, with a comment, in `.env.example`."""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec
from dotenv import dotenv_values

REAL_FIREWORKS_URL = "https://api.fireworks.ai"
SIMULATOR = "simulator"  # FIREWORKS_BASE_URL=simulator runs the built-in Fireworks simulator
Policy = Literal["strict-fifo", "backfill"]


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    fireworks_api_key: str | None = msgspec.field(default=None)
    fireworks_account_id: str = "ftq"
    fireworks_base_url: str = REAL_FIREWORKS_URL
    fireworks_gpu_quota: int | None = None
    fireworks_quota_id: str | None = None
    user_cap: int = 1
    reconcile_seconds: float = 15.0
    policy: Policy = "strict-fifo"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path.home() / ".local" / "share" / "ftq"
    log_level: str = "info"
    log_format: Literal["json", "console"] = "json"
    max_body_bytes: int = 1024 * 1024
    workers: int = 1
    secret_key: str | None = None
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
    def uses_simulator(self) -> bool:
        return self.fireworks_base_url == SIMULATOR

    def __repr__(self) -> str:  # never print the key
        key = "***" if self.fireworks_api_key else None
        return f"Settings(fireworks_account_id={self.fireworks_account_id!r}, key={key})"

    @property
    def webhooks_enabled(self) -> bool:
        return self.secret_key is not None

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
    "host": "FTQ_HOST",
    "port": "FTQ_PORT",
    "data_dir": "FTQ_DATA_DIR",
    "log_level": "FTQ_LOG_LEVEL",
    "log_format": "FTQ_LOG_FORMAT",
    "max_body_bytes": "FTQ_MAX_BODY_BYTES",
    "workers": "FTQ_WORKERS",
    "secret_key": "FTQ_SECRET_KEY",
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
    raw = {field: values[env] for field, env in ENV_NAMES.items() if values.get(env, "") != ""}
    data_dir = raw.pop("data_dir", None)  # msgspec does not convert str to Path
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_name_the_variable(str(exc))) from None
    path = Path(data_dir) if data_dir is not None else settings.data_dir
    settings = msgspec.structs.replace(settings, data_dir=path.expanduser())
    if settings.user_cap < 0:
        raise SettingsError("FTQ_USER_CAP must be 0 or more")
    if settings.reconcile_seconds <= 0:
        raise SettingsError("FTQ_RECONCILE_SECONDS must be positive")
    if settings.fireworks_gpu_quota is not None and settings.fireworks_gpu_quota < 0:
        raise SettingsError("FIREWORKS_GPU_QUOTA must be 0 or more")
    if settings.workers < 1:
        raise SettingsError("FTQ_WORKERS must be 1 or more")
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
