"""A webhook subscription as an aggregate (stream `webhook:<id>`): its state folded from its
events, for the type → decider table. Its writer (service.webhooks.subscriptions) checks
each change under the subscription's row lock, so `decide` only refuses what no stream can
hold: a change to a subscription that was never made, or any after its deletion."""

from __future__ import annotations

from typing import Final

import msgspec

from events.domain.decider import Decider, never, tags
from events.domain.rejections import AlreadyExists, InvalidState, UnknownStream
from events.domain.webhooks import (
    WebhookDeleted,
    WebhookEnabled,
    WebhookEvent,
    WebhookFailing,
    WebhookState,
    WebhookSubscribed,
    webhook_stream,
)


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 0
    webhook_id: str = ""
    state: WebhookState | None = None  # None: no such subscription


def evolve_subscription(state: Subscription, event: WebhookEvent) -> Subscription:
    version = state.version + 1
    match event:
        case WebhookSubscribed():
            return Subscription(version=version, webhook_id=event.webhook_id, state="active")
        case WebhookDeleted():
            return msgspec.structs.replace(state, version=version, state="deleted")
        case WebhookFailing():
            return msgspec.structs.replace(state, version=version, state="failing")
        case WebhookEnabled():
            return msgspec.structs.replace(state, version=version, state="active")


def decide_subscription(command: WebhookEvent, state: Subscription) -> list[WebhookEvent]:
    """The command is the event its writer has already checked against the row."""
    if isinstance(command, WebhookSubscribed):
        if state.state is not None:
            raise AlreadyExists(f"webhook {command.webhook_id} already exists")
        return [command]
    if state.state is None:
        raise UnknownStream("no such webhook")
    if state.state == "deleted":
        raise InvalidState("webhook is deleted")
    return [command]


def _is_deleted(state: Subscription) -> bool:
    return state.state == "deleted"


def _key(state: Subscription) -> str:
    return state.webhook_id


WEBHOOK: Final[Decider[WebhookEvent, Subscription, WebhookEvent]] = Decider(
    name="webhook",
    initial=Subscription(),
    decide=decide_subscription,
    evolve=evolve_subscription,
    is_terminal=_is_deleted,
    key=_key,
    stream_id=webhook_stream,
    frees_a_slot=never,
    event_types=tags(WebhookEvent),
)
