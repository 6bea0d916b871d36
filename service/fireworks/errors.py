"""Fireworks error taxonomy and the classifier that maps an HTTP reply onto it."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import msgspec

QUOTA_PATTERN = re.compile(r"in use:\s*(\d+),\s*quota:\s*(\d+)", re.IGNORECASE)


class FireworksError(Exception):
    """Any failed Fireworks call; `status` is the HTTP status (0 for network errors)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class QuotaExhausted(FireworksError):
    """The account's GPU quota is used up (S3 saw this on 429 and on 400)."""

    def __init__(self, status: int, message: str, in_use: int, quota: int) -> None:
        super().__init__(status, message)
        self.in_use = in_use
        self.quota = quota


class NotFound(FireworksError):
    """404: the job or quota does not exist (or was deleted)."""


class AlreadyExists(FireworksError):
    """409 on create: the id is taken, possibly by our own earlier attempt."""


class Rejected(FireworksError):
    """A 4xx (or 501) that retrying will not fix; `message` is Fireworks' text."""


class Unauthenticated(Rejected):
    """401: missing or wrong API key."""


class Transient(FireworksError):
    """Network error, timeout, 5xx or a non-quota 429; worth retrying later."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


def error_kind(exc: FireworksError) -> str:
    """The metric label of an error: quota, not_found, already_exists, unauthenticated,
    rejected or transient."""
    match exc:
        case QuotaExhausted():
            return "quota"
        case NotFound():
            return "not_found"
        case AlreadyExists():
            return "already_exists"
        case Unauthenticated():
            return "unauthenticated"
        case Rejected():
            return "rejected"
        case _:
            return "transient"


def error_message(body_text: str) -> str:
    """Fireworks' message from an error body: `message`, `error.message`, `error`, raw text."""
    try:
        body: Any = msgspec.json.decode(body_text)
    except msgspec.DecodeError:
        return body_text.strip()
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return str(body["message"])
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    if isinstance(body, str):
        return body
    return body_text.strip()


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def quota_numbers(message: str, requested: int | None = None) -> tuple[int, int] | None:
    """(in_use, quota) when `message` is the quota-exhausted text, else None.

    Exhausted means in_use >= quota > 0, or, when we know how many GPUs the refused create
    asked for, in_use + requested > quota (a partial fit).
    """
    match = QUOTA_PATTERN.search(message)
    if match is None:
        return None
    in_use, quota = int(match.group(1)), int(match.group(2))
    if quota <= 0:
        return None
    if in_use >= quota or (requested is not None and in_use + requested > quota):
        return in_use, quota
    return None


def classify(
    status: int, body_text: str, headers: Mapping[str, str], *, requested: int | None = None
) -> FireworksError:
    """Map a non-2xx reply to the error ftq acts on; `requested` is a create's GPU count."""
    message = error_message(body_text) or f"HTTP {status}"
    if status in (400, 429) and (numbers := quota_numbers(message, requested)) is not None:
        return QuotaExhausted(status, message, *numbers)
    if status == 401:
        return Unauthenticated(status, message)
    if status == 404:
        return NotFound(status, message)
    if status == 409:
        return AlreadyExists(status, message)
    if status in (408, 429) or (status >= 500 and status != 501):
        return Transient(status, message, retry_after(headers))
    return Rejected(status, message)
