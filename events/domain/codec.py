"""Event (de)serialisation, with upcasting of old schema versions at decode.

The store keeps `type`, `schema_version` and `data` (JSON) per row. Decoding a row whose
schema version is older than the current one runs the registered upcasters in order on the
raw JSON object first, so the rest of ftq only ever sees current event types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

import msgspec

from events.domain.directory_events import SchedulerEvent, UserEvent
from events.domain.job_events import JobEvent
from events.domain.webhooks import WebhookEvent

AnyEvent = JobEvent | UserEvent | SchedulerEvent | WebhookEvent
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventType(ValueError):
    """The row's type is not one ftq knows (or its data does not fit it)."""


def _upcast_job_submitted_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v1 (before idempotency keys) named the payload `payload` and the count `gpus`."""
    out = dict(data)
    out["fireworks_payload"] = out.pop("payload", {})
    out["gpu_count"] = out.pop("gpus", 4)
    return out


# (type, from_version) -> function producing the data of version from_version + 1
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("job.submitted", 1): _upcast_job_submitted_v1,
}
CURRENT_VERSION: dict[str, int] = {"job.submitted": 2}

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)
EVENT_TYPES: dict[str, type[AnyEvent]] = {
    str(cls.__struct_config__.tag): cls for cls in get_args(AnyEvent)
}


def event_type(event: AnyEvent) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]


def schema_version(type_: str) -> int:
    return CURRENT_VERSION.get(type_, 1)


def encode(event: AnyEvent) -> bytes:
    return _encoder.encode(event)


def decode(type_: str, version: int, data: str | bytes) -> AnyEvent:
    """Decode one stored event, upcasting it to the current schema first when it is older."""
    if type_ not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type {type_!r}")
    try:
        if version == schema_version(type_):
            event = _decoder.decode(data)
        else:
            event = _decode_old(type_, version, data)
    except msgspec.ValidationError as exc:
        raise UnknownEventType(f"{type_} v{version}: {exc}") from exc
    if event_type(event) != type_:
        raise UnknownEventType(f"row type {type_!r} but data tagged {event_type(event)!r}")
    return event


def _decode_old(type_: str, version: int, data: str | bytes) -> AnyEvent:
    raw: dict[str, Any] = msgspec.json.decode(data)
    current = schema_version(type_)
    if version > current:
        raise UnknownEventType(f"{type_} v{version} is newer than this ftq (v{current})")
    while version < current:
        upcaster = UPCASTERS.get((type_, version))
        if upcaster is None:
            raise UnknownEventType(f"no upcaster for {type_} v{version}")
        raw = upcaster(raw)
        version += 1
    raw["type"] = type_
    event: AnyEvent = msgspec.convert(raw, AnyEvent)
    return event
