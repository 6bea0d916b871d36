"""Webhook subscriptions: their events, which log events each one receives, the delivery
body's id and signature, the retry schedule and the URL rules. Pure: no IO, no clock, no
randomness (secrets, jitter and times arrive as arguments).

A subscription is a checkpointed reader of the log: it receives, in log order, every job
event of the chosen types whose job is in its scope (`own`: the subscriber's jobs; `user`:
one user's, set by an admin; `all`: everyone's, admins only). The subscription is recorded
in the log on stream `webhook:<id>` without its secret; the secret and the reader's
position live outside the log."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Final, Literal, get_args
from urllib.parse import urlsplit

from events.domain.job_events import Event, JobEvent

Scope = Literal["own", "user", "all"]
WebhookState = Literal["active", "failing", "deleted"]
# The events that end a job (SUCCESS, FAIL or CANCELLED): what a subscription gets by default.
TERMINAL_TYPES: Final = (
    "job.succeeded",
    "job.failed",
    "job.rejected",
    "job.dependency_failed",
    "job.cancelled",
)
# Every job event type may be subscribed to.
JOB_EVENT_TYPES: Final = tuple(str(cls.__struct_config__.tag) for cls in get_args(JobEvent))
BACKOFF_BASE_S: Final = 30.0
BACKOFF_CAP_S: Final = 6 * 3600.0


def webhook_stream(webhook_id: str) -> str:
    return f"webhook:{webhook_id}"


class WebhookSubscribed(Event, frozen=True, tag="webhook.subscribed"):
    """A subscription (never its secret). `user_id` is the user whose jobs it follows for
    scope `user`; `owner_id` is who created it."""

    webhook_id: str
    owner_id: str
    url: str
    types: list[str]
    scope: Scope
    user_id: str | None = None


class WebhookDeleted(Event, frozen=True, tag="webhook.deleted"):
    webhook_id: str
    by: str


class WebhookFailing(Event, frozen=True, tag="webhook.failing"):
    """Deliveries stopped after `attempts` failures at log position `position`."""

    webhook_id: str
    position: int
    attempts: int
    error: str


class WebhookEnabled(Event, frozen=True, tag="webhook.enabled"):
    """Deliveries resume from where they stopped."""

    webhook_id: str
    by: str


WebhookEvent = WebhookSubscribed | WebhookDeleted | WebhookFailing | WebhookEnabled


def receives(
    scope: Scope,
    owner_id: str,
    user_id: str | None,
    types: frozenset[str],
    event_type: str,
    job_owner_id: str | None,
) -> bool:
    """Whether a subscription gets one log event (of a job owned by `job_owner_id`)."""
    if event_type not in types or job_owner_id is None:
        return False
    if scope == "all":
        return True
    return job_owner_id == (owner_id if scope == "own" else user_id)


def delivery_id(webhook_id: str, position: int) -> str:
    """The id of delivering the event at `position` to one subscription, stable across
    retries (receivers dedupe with it)."""
    h = hashlib.sha256(f"ftq-delivery:{webhook_id}:{position}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def signature(secret: bytes, body: bytes) -> str:
    """`X-FTQ-Signature`: GitHub's `sha256=<hex HMAC-SHA256 of the raw body>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def backoff_s(attempt: int, jitter: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): 30 s doubling up to 6 h,
    scaled by `jitter` in [0, 1) to 50-150 %; 12 attempts span about a day."""
    base = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** (attempt - 1))
    return float(base * (0.5 + jitter))


def url_problem(url: str) -> str | None:
    """Why a subscription URL is refused, or None: http(s) only, a host, no credentials."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are allowed"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed (use the signing secret)"
    if not parts.hostname:
        return "the URL has no host"
    return None


def address_problem(address: str) -> str | None:
    """Why a resolved address may not be called (loopback, private, link-local, ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_loopback:
        return f"{address} is a loopback address"
    if ip.is_link_local:
        return f"{address} is a link-local address"
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
        return f"{address} is a private or reserved address"
    return None
