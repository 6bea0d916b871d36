"""A webhook subscription as an aggregate (stream `webhook:<id>`): its state folded from its
events, for the type → decider table. Its writer (service.webhooks.subscriptions) checks
each change under the subscription's row lock, so `decide` only refuses what no stream can
hold: a change to a subscription that was never made, or any after its deletion."""

from __future__ import annotations

from operator import attrgetter
from typing import Final

import msgspec

from events.domain import webhooks
from events.domain.decider import Decider, tags
from events.domain.rejections import AlreadyExists, InvalidState, UnknownStream

Event = webhooks.WebhookEvent


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 0
    webhook_id: str = ""
    state: webhooks.WebhookState | None = None  # None: no such subscription


def evolve_subscription(state: Subscription, event: Event) -> Subscription:
    version = state.version + 1
    match event:
        case webhooks.WebhookSubscribed():
            return Subscription(version=version, webhook_id=event.webhook_id, state="active")
        case webhooks.WebhookDeleted():
            return msgspec.structs.replace(state, version=version, state="deleted")
        case webhooks.WebhookFailing():
            return msgspec.structs.replace(state, version=version, state="failing")
        case webhooks.WebhookEnabled():
            return msgspec.structs.replace(state, version=version, state="active")


def decide_subscription(command: Event, state: Subscription) -> list[Event]:
    """The command is the event its writer has already checked against the row."""
    if isinstance(command, webhooks.WebhookSubscribed):
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


WEBHOOK: Final[Decider[Event, Subscription, Event]] = Decider(
    "webhook", Subscription(), decide_subscription, evolve_subscription, tags(Event),
    key=attrgetter("webhook_id"), stream_id=webhooks.webhook_stream, is_terminal=_is_deleted,
)  # fmt: skip
