"""How the live history routes' 200 answer is documented: the media types they stream
(`text/event-stream`, and `application/x-ndjson` where `Accept` asks for it), each a stream
of text, not one JSON document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIType

from service.api.streams import NDJSON_MEDIA_TYPE, SSE_MEDIA_TYPE

_WHAT: dict[str, str] = {
    SSE_MEDIA_TYPE: "Server-Sent Events: `id:` (global position), `event:` (type), `data:` "
    "(the history item as JSON), blank line; `: keepalive` comments while idle.",
    NDJSON_MEDIA_TYPE: 'One history item as JSON per line; `{"type":"heartbeat"}` '
    "lines while idle.",
}


@dataclass
class SseOperation(Operation):
    """An operation whose 200 is an SSE stream."""

    media_types: ClassVar[tuple[str, ...]] = (SSE_MEDIA_TYPE,)

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.content = {
                media: OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, description=_WHAT[media])
                )
                for media in self.media_types
            }


@dataclass
class SseOrNdjsonOperation(SseOperation):
    """An operation whose 200 is SSE, or NDJSON with `Accept: application/x-ndjson`."""

    media_types: ClassVar[tuple[str, ...]] = (SSE_MEDIA_TYPE, NDJSON_MEDIA_TYPE)
