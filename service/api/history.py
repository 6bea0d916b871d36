"""Job history: GET /jobs/{id}/events, its live SSE twin, and GET /events/stream.

Handlers get `caller` (authenticated `Caller`) and `runtime` (the app's `Runtime`: `pool`,
`watcher`) as dependencies. Every event shown goes through `redact`; `key.issued` never
shows its key hash. Members see only their own jobs; another user's job is 404."""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Request, get
from litestar.params import Parameter
from litestar.response import Stream

from events.store.errors import UnknownPosition
from events.store.log import Cursor, cursor_at_position, read_stream
from service.api.auth import CALLER, Caller
from service.api.common import RUNTIME, checked_uuid, errors
from service.api.errors import invalid, not_found
from service.api.runtime import Runtime
from service.api.stream_docs import SseOperation, SseOrNdjsonOperation
from service.api.streams import (
    SSE,
    HistoryEvent,
    JobSource,
    history_event,
    log_filter,
    log_source,
    stream_response,
    wire_for,
)
from service.sql import QUERIES

_MAX_POSITION: Final = 2**63 - 1
LastEventId = Annotated[
    str | None,
    Parameter(
        header="Last-Event-ID",
        required=False,
        max_length=20,
        description="Resume after this global position (sent by SSE clients on reconnect).",
    ),
]
STREAM_NOTE: Final = (
    "Each SSE event has `id:` = the global position, `event:` = the type and `data:` = the "
    "JSON event. While idle a `: keepalive` comment is sent every 15 s; in NDJSON the "
    'heartbeat is the line `{"type":"heartbeat"}` (it has no `position`).'
)


def _position(value: str | None, name: str) -> int | None:
    """A plain non-negative position, or None when absent; anything else is 400."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii() or int(text) > _MAX_POSITION:
        raise invalid(f"{name} must be a non-negative integer position")
    return int(text)


async def _visible_history(runtime: Runtime, caller: Caller, job_id: str) -> tuple[str, str | None]:
    """The canonical id of a job the caller may see, and its owner's email for an admin
    (None for a member); 404 otherwise (never 403)."""
    canonical = checked_uuid(job_id)
    owner = await runtime.pool.fetchrow(QUERIES["history_job_owner"], canonical)
    if owner is None or not caller.may_see(owner[0]):
        raise not_found("no such job")
    return canonical, (str(owner[1]) if caller.is_admin else None)


@get(
    "/jobs/{id:str}/events",
    summary="A job's history, oldest first",
    responses=errors(404),
    dependencies={**CALLER, **RUNTIME},
)
async def job_events(id: str, caller: Caller, runtime: Runtime) -> list[HistoryEvent]:
    job_id, user = await _visible_history(runtime, caller, id)
    async with runtime.pool.acquire() as conn:
        rows = await read_stream(conn, job_id)
    return [history_event(r, user) for r in rows]


@get(
    "/jobs/{id:str}/events/stream",
    summary="A job's history as Server-Sent Events, live until the job is terminal",
    description=STREAM_NOTE,
    responses=errors(400, 404),
    media_type="text/event-stream",
    operation_class=SseOperation,
    dependencies={**CALLER, **RUNTIME},
)
async def job_event_stream(
    request: Request[Any, Any, Any],
    id: str,
    caller: Caller,
    runtime: Runtime,
    last_event_id: LastEventId = None,
) -> Stream:
    after = _position(last_event_id, "Last-Event-ID") or 0
    job_id, user = await _visible_history(runtime, caller, id)
    source = JobSource(runtime.pool, runtime.watcher, job_id, after, SSE, user)
    return stream_response(request, source, SSE)


@get(
    "/events/stream",
    summary="Everything the caller may see, from a position, live (SSE or NDJSON)",
    description="Members see the events of their own jobs; admins see every event (user, "
    "key and scheduler events too; key hashes never). Starts after `after` or the "
    "`Last-Event-ID` header (which wins; 0 or absent: from the beginning). "
    "`Accept: application/x-ndjson` gives one JSON object per line. " + STREAM_NOTE,
    responses=errors(400),
    operation_class=SseOrNdjsonOperation,
    dependencies={**CALLER, **RUNTIME},
)
async def event_stream(
    request: Request[Any, Any, Any],
    caller: Caller,
    runtime: Runtime,
    last_event_id: LastEventId = None,
    after: Annotated[
        str | None,
        Parameter(max_length=20, description="Start after this global position (0: start)."),
    ] = None,
    job: Annotated[
        list[str] | None, Parameter(description="Only these jobs (repeatable or a,b,c).")
    ] = None,
    type_: Annotated[
        list[str] | None,
        Parameter(query="type", description="Only these event types (repeatable or a,b,c)."),
    ] = None,
) -> Stream:
    resume = _position(last_event_id, "Last-Event-ID")
    start = resume if resume is not None else _position(after, "after") or 0
    wanted = log_filter(job, type_)
    wire = wire_for(request.headers.get("accept"))
    try:
        async with runtime.pool.acquire() as conn:
            cursor: Cursor = await cursor_at_position(conn, start)
    except UnknownPosition:
        raise invalid(f"no event at position {start}") from None
    source = log_source(
        runtime.pool,
        runtime.watcher,
        cursor,
        wire,
        wanted,
        user_id=caller.user_id,
        is_admin=caller.is_admin,
    )
    return stream_response(request, source, wire)


history_routes: Final[list[Any]] = [job_events, job_event_stream, event_stream]
