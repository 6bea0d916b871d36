"""Webhook subscriptions: `POST /webhooks`, `GET /webhooks`, `DELETE /webhooks/{id}`,
`POST /webhooks/{id}/enable`. A member subscribes to their own jobs; an admin may follow one
user (`user`: email or id) or everyone (`all: true`). The signing secret is generated when not
given and shown once, in the 201."""

from __future__ import annotations

import asyncio
import re
import socket
import uuid
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

import msgspec
from litestar import delete, get, post
from litestar.params import JSONBody
from msgspec import Meta

from events.domain.webhooks import (
    JOB_EVENT_TYPES,
    TERMINAL_TYPES,
    Scope,
    WebhookSubscribed,
    address_problem,
    url_problem,
)
from service import directory
from service.api.auth import Caller, CallerDep
from service.api.common import RuntimeDep, StrictDTO, checked_uuid, errors, metadata
from service.api.errors import ApiError, invalid, not_found
from service.api.runtime import Runtime
from service.webhooks import subscriptions
from service.webhooks.sealing import new_secret
from service.webhooks.subscriptions import Webhook

MAX_PER_OWNER: Final = 100
RESOLVE_TIMEOUT_S: Final = 3.0
Secret = Annotated[str, Meta(min_length=16, max_length=256)]


_PORT: Final = (
    "(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])?)?"
)
# What `url_problem` takes (http or https, a host, no credentials, a valid port), host
# names in ASCII: the OpenAPI document's `url` pattern.
_H16: Final = "[0-9A-Fa-f]{1,4}"
_OCTET: Final = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32: Final = f"(?:{_H16}:{_H16}|{_OCTET}(?:\\.{_OCTET}){{3}})"
_IPV6: Final = "|".join(  # RFC 3986's IPv6address
    [
        f"(?:{_H16}:){{6}}{_LS32}",
        f"::(?:{_H16}:){{5}}{_LS32}",
        f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        *(f"(?:(?:{_H16}:){{0,{n - 1}}}{_H16})?::(?:{_H16}:){{{4 - n}}}{_LS32}" for n in (2, 3)),
        f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        f"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
)
_HOST: Final = f"(?:[A-Za-z0-9._~%!$&'()*+,;=-]+|\\[(?:{_IPV6})\\])"
URL: Final = f"^[Hh][Tt][Tt][Pp][Ss]?://{_HOST}{_PORT}(?:[/?#][^\\x00\\n]*)?$"
_URL: Final = re.compile(URL)
Url = Annotated[str, Meta(max_length=2048)]
EventType = Literal[JOB_EVENT_TYPES]  # type: ignore[valid-type]


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /webhooks. `user` (admins) is a user's email or id; `user` and
    `all: true` are not given together."""

    url: Url
    types: Annotated[list[EventType], Meta(min_length=1)] | None = None
    secret: Secret | None = None
    user: str | None = None
    all: bool = False


class CreatedWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """The 201 of POST /webhooks: the subscription and, this once, its signing secret."""

    webhook: Webhook
    secret: str


def _key(runtime: Runtime) -> bytes:
    """The master key new secrets are sealed with (FTQ_SECRET_KEY or the key file)."""
    return runtime.vault.keyring.current.key


def _types(requested: list[str] | None) -> list[str]:
    if requested is None:
        return sorted(TERMINAL_TYPES)
    unknown = [t for t in requested if t not in JOB_EVENT_TYPES]
    if unknown or not requested:
        raise invalid(
            "types must be job event types",
            [{"field": "types", "problem": f"allowed: {', '.join(JOB_EVENT_TYPES)}"}],
        )
    return sorted(set(requested))


async def _target_problem(url: str, allow_private: bool) -> str | None:
    """Why the URL may not be called: its form, then (unless allowed) where it resolves. The
    deliverer checks the resolved addresses again at each delivery."""
    if problem := url_problem(url):
        return problem
    if not _URL.fullmatch(url):
        return "not a valid URL (an http or https URL with an ASCII host name)"
    if allow_private:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except (OSError, TimeoutError, UnicodeError):  # UnicodeError: an empty or long label
        return f"{host} does not resolve"
    for *_, address in found:
        if problem := address_problem(str(address[0])):
            return problem
    return None


async def _scope(
    runtime: Runtime, caller: Caller, body: WebhookRequest
) -> tuple[Scope, str | None]:
    if not body.all and body.user is None:
        return "own", None
    if not caller.is_admin:
        raise ApiError(403, "FORBIDDEN", "only admins may follow other users' jobs")
    if body.all and body.user is not None:
        raise invalid("give user or all, not both", [{"field": "user", "problem": "with all"}])
    if body.all:
        return "all", None
    assert body.user is not None
    is_id = _is_uuid(body.user)
    found = await directory.find_user(
        runtime.pool,
        user_id=body.user if is_id else None,
        email=None if is_id else body.user.strip().lower(),
    )
    if found is None:
        raise invalid("no such user", [{"field": "user", "problem": "not a user's email or id"}])
    return "user", found.id


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _visible(caller: Caller, webhook: Webhook | None) -> Webhook:
    if webhook is None or not (caller.is_admin or webhook.owner_id == caller.user_id):
        raise not_found("no such webhook")
    return webhook


@post(
    "/webhooks",
    summary="Subscribe a URL to job events (signed deliveries from the log)",
    status_code=201,
    responses=errors(403, 409),
    dto=StrictDTO[WebhookRequest],
    return_dto=None,
)
async def create_webhook(
    caller: CallerDep, runtime: RuntimeDep, data: JSONBody[WebhookRequest]
) -> CreatedWebhook:
    body = data
    key = _key(runtime)
    if problem := await _target_problem(body.url, runtime.settings.webhook_allow_private):
        raise invalid(f"url refused: {problem}", [{"field": "url", "problem": problem}])
    types = _types(body.types)
    scope, user_id = await _scope(runtime, caller, body)
    if len(await subscriptions.listed(runtime.pool, caller.user_id)) >= MAX_PER_OWNER:
        raise ApiError(409, "INVALID_STATE", f"at most {MAX_PER_OWNER} webhooks per user")
    secret = body.secret or new_secret()
    event = WebhookSubscribed(
        at=runtime.clock(),
        webhook_id=str(uuid.uuid4()),
        owner_id=caller.user_id,
        url=body.url,
        types=types,
        scope=scope,
        user_id=user_id,
    )
    webhook = await subscriptions.create(runtime.pool, event, secret, key, metadata(caller))
    return CreatedWebhook(webhook=webhook, secret=secret)


@get("/webhooks", summary="Your webhook subscriptions (admins: all)", responses=errors())
async def list_webhooks(caller: CallerDep, runtime: RuntimeDep) -> list[Webhook]:
    return await subscriptions.listed(runtime.pool, None if caller.is_admin else caller.user_id)


@delete(
    "/webhooks/{webhook_id:str}",
    summary="Delete a subscription",
    status_code=204,
    responses=errors(),
)
async def delete_webhook(caller: CallerDep, runtime: RuntimeDep, webhook_id: str) -> None:
    found = await subscriptions.get(runtime.pool, checked_uuid(webhook_id, "webhook"))
    webhook = _visible(caller, found)
    await subscriptions.change_state(
        runtime.pool, webhook, "deleted", caller.email, runtime.clock(), metadata(caller)
    )


@post(
    "/webhooks/{webhook_id:str}/enable",
    summary="Resume a failing subscription from where it stopped",
    status_code=200,
    responses=errors(),
)
async def enable_webhook(caller: CallerDep, runtime: RuntimeDep, webhook_id: str) -> Webhook:
    found = await subscriptions.get(runtime.pool, checked_uuid(webhook_id, "webhook"))
    webhook = _visible(caller, found)
    if webhook.state == "failing":
        await subscriptions.change_state(
            runtime.pool, webhook, "active", caller.email, runtime.clock(), metadata(caller)
        )
    return _visible(caller, await subscriptions.get(runtime.pool, webhook.id))


WEBHOOK_ROUTES: Final = [create_webhook, list_webhooks, delete_webhook, enable_webhook]
