"""Live history streams: a job's events until it is terminal, and the whole log (what the
caller may see), as SSE or NDJSON.

A source reads one batch (at most ``BATCH`` events) per call and is asked again only after
the previous batch went through the ASGI ``send`` — slow clients hold back the reading
instead of piling events up in memory. Sources sleep on the process's one shared
``LogWatcher`` (plus its fallback timer), never polling the database per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import asyncpg
import msgspec
import structlog
from litestar import Request
from litestar.response import Stream

from events.domain import aggregates, codec
from events.domain.job import JOB, JobState
from events.domain.job_events import JobEvent
from events.store.log import Cursor, RecordedEvent, read_stream
from events.store.tail import LogTail, LogWatcher, Subscription
from service.api.errors import invalid
from service.metrics import STREAM_CLIENTS
from service.redaction import redact
from service.sql import QUERIES

log = structlog.get_logger(__name__)

BATCH: Final = 500
FALLBACK_POLL_S: Final = 2.0  # re-read even without a NOTIFY (a lost wake-up only delays)
HEARTBEAT_S: Final = 15.0
# Tests (and deployments behind impatient proxies) set this key on `app.state` to change it.
HEARTBEAT_STATE_KEY: Final = "history_heartbeat_s"
_OWNED_CACHE_MAX: Final = 10_000

SSE_MEDIA_TYPE: Final = "text/event-stream"
NDJSON_MEDIA_TYPE: Final = "application/x-ndjson"
STREAM_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class HistoryEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One event as the history routes show it (data redacted, current schema). `job_id` is
    the event's stream id for every `job.*` event; `user`, the job owner's email, is shown
    to admins only."""

    position: int
    version: int
    type: str
    recorded_at: datetime
    job_id: str | None = None
    user: str | None = None
    data: dict[str, Any]


def _data(row: RecordedEvent) -> dict[str, Any]:
    try:
        data = msgspec.to_builtins(codec.decode(row.type, row.schema_version, row.data))
    except codec.UnknownEventType:  # an event of a newer ftq: show it as stored
        data = msgspec.json.decode(row.data)
    if not isinstance(data, dict):
        return {}
    data.pop("type", None)  # the tag repeats the envelope's `type`
    if row.type == "key.issued":
        data.pop("key_hash", None)
    cleaned: dict[str, Any] = redact(data)
    return cleaned


def is_job_event(row: RecordedEvent) -> bool:
    return aggregates.is_job_event(row.type)


def history_event(row: RecordedEvent, user: str | None = None) -> HistoryEvent:
    return HistoryEvent(
        position=row.position,
        version=row.stream_version,
        type=row.type,
        recorded_at=row.recorded_at,
        job_id=row.stream_id if is_job_event(row) else None,
        user=user,
        data=_data(row),
    )


class OwnerEmails:
    """The owner's email of each job stream (for admins' history items), asked of `jobs`
    once per batch for unseen ids and kept (an owner never changes)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._known: dict[str, str | None] = {}

    async def of(self, rows: list[RecordedEvent]) -> dict[str, str | None]:
        ids = {r.stream_id for r in rows if is_job_event(r) and _is_uuid(r.stream_id)}
        unseen = sorted(ids - self._known.keys())
        if unseen:
            found = dict(
                (rec[0], rec[1])
                for rec in await self._pool.fetch(QUERIES["history_job_emails"], unseen)
            )
            if len(self._known) + len(unseen) > _OWNED_CACHE_MAX:
                self._known.clear()
            self._known.update((job_id, found.get(job_id)) for job_id in unseen)
        return {job_id: self._known.get(job_id) for job_id in ids}


_encoder: Final = msgspec.json.Encoder()


@dataclass(frozen=True)
class Wire:
    """How events are framed on the wire, and what an idle heartbeat looks like."""

    media_type: str
    heartbeat: bytes
    frame: Callable[[HistoryEvent], bytes]


def _sse(event: HistoryEvent) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.position,
        event.type.encode(),
        _encoder.encode(event),
    )


def _ndjson(event: HistoryEvent) -> bytes:
    return _encoder.encode(event) + b"\n"


SSE: Final = Wire(SSE_MEDIA_TYPE, b": keepalive\n\n", _sse)
NDJSON: Final = Wire(NDJSON_MEDIA_TYPE, b'{"type":"heartbeat"}\n', _ndjson)


class Source(Protocol):
    async def next_chunk(self) -> bytes | None:
        """The next non-empty chunk of framed events; None when the stream is over."""

    async def close(self) -> None: ...


class JobSource:
    """A job's events after a position, live until the job is terminal.

    Within one stream positions grow with versions (each append waits for the previous
    version to commit), so "after position" is a plain filter."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        watcher: LogWatcher,
        job_id: str,
        after: int,
        wire: Wire,
        user: str | None = None,
    ) -> None:
        self._pool = pool
        self._user = user
        self._watcher = watcher
        self._job_id = job_id
        self._after = after
        self._wire = wire
        self._version = 0
        self._state: JobState = JOB.initial  # ends the stream once the domain calls it terminal
        self._ended = False
        self._subscription: Subscription | None = None  # taken when the stream starts

    async def next_chunk(self) -> bytes | None:
        if self._subscription is None:
            self._subscription = self._watcher.subscribe([self._job_id])
        while not self._ended:
            async with self._pool.acquire() as conn:
                rows = await read_stream(conn, self._job_id, self._version)
            if not rows:
                await self._subscription.wait(FALLBACK_POLL_S)
                continue
            self._version = rows[-1].stream_version
            self._state = JOB.fold(_job_events(rows), self._state)
            self._ended = JOB.is_terminal(self._state)
            fresh = [r for r in rows if r.position > self._after]
            if fresh:
                return b"".join(self._wire.frame(history_event(r, self._user)) for r in fresh)
        return None

    async def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()


def _job_events(rows: list[RecordedEvent]) -> Iterator[JobEvent]:
    """The events of a job stream's rows, passing over those of a newer ftq."""
    for row in rows:
        with contextlib.suppress(codec.UnknownEventType):
            yield codec.decode(row.type, row.schema_version, row.data)  # type: ignore[misc]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class OwnedJobs:
    """Which job streams a member owns, asked of `jobs` once per batch for unseen ids.

    An event is only read once committed, and a job's row is written in the same
    transaction as its first event, so a job submitted after the stream began is found."""

    def __init__(self, pool: asyncpg.Pool, user_id: str) -> None:
        self._pool = pool
        self._user_id = user_id
        self._known: dict[str, bool] = {}

    async def keep(self, rows: list[RecordedEvent]) -> list[RecordedEvent]:
        jobs = [r for r in rows if is_job_event(r) and _is_uuid(r.stream_id)]
        unseen = sorted({r.stream_id for r in jobs} - self._known.keys())
        if unseen:
            owned = {
                rec[0]
                for rec in await self._pool.fetch(
                    QUERIES["history_owned_jobs"], self._user_id, unseen
                )
            }
            if len(self._known) + len(unseen) > _OWNED_CACHE_MAX:
                self._known.clear()
            self._known.update((job_id, job_id in owned) for job_id in unseen)
        return [r for r in jobs if self._known.get(r.stream_id, False)]


async def _everything(rows: list[RecordedEvent]) -> list[RecordedEvent]:
    return rows


@dataclass(frozen=True)
class LogFilter:
    """The `job` and `type` filters of /events/stream (empty: no filter)."""

    jobs: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    def wants(self, row: RecordedEvent) -> bool:
        return (not self.jobs or row.stream_id in self.jobs) and (
            not self.types or row.type in self.types
        )


class LogSource:
    """The log after a cursor, in its read order, filtered and limited to what the caller
    may see; never ends."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        watcher: LogWatcher,
        after: Cursor,
        wire: Wire,
        keep: Callable[[list[RecordedEvent]], Awaitable[list[RecordedEvent]]] | None = None,
        wanted: LogFilter | None = None,
        emails: OwnerEmails | None = None,
    ) -> None:
        self._emails = emails
        self._tail = LogTail(
            pool, after, batch=BATCH, fallback_poll_s=FALLBACK_POLL_S, watcher=watcher
        )
        self._wire = wire
        self._keep = keep or _everything
        self._wanted = wanted or LogFilter()
        self._entered = False

    async def next_chunk(self) -> bytes | None:
        if not self._entered:
            await self._tail.__aenter__()
            self._entered = True
        while True:
            rows = await self._keep([r for r in await anext(self._tail) if self._wanted.wants(r)])
            if rows:
                users = await self._emails.of(rows) if self._emails is not None else {}
                return b"".join(
                    self._wire.frame(history_event(r, users.get(r.stream_id))) for r in rows
                )

    async def close(self) -> None:
        if self._entered:
            self._entered = False
            await self._tail.__aexit__(None, None, None)


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def framed(source: Source, wire: Wire, heartbeat_s: float) -> AsyncIterator[bytes]:
    """The chunks of ``source``, with a heartbeat whenever it is idle for ``heartbeat_s``.

    The next chunk is read only after the previous one was yielded and sent. On a
    disconnect (the generator is cancelled or closed) the source is closed and the
    ``ftq_stream_clients`` gauge goes back down."""
    STREAM_CLIENTS.inc()
    pending: asyncio.Task[bytes | None] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(source.next_chunk())
            while not (await asyncio.wait({pending}, timeout=heartbeat_s))[0]:
                yield wire.heartbeat
            task, pending = pending, None
            chunk = task.result()
            if chunk is None:
                return
            yield chunk
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Headers are sent: end the stream; the client resumes with Last-Event-ID.
        log.warning("history.stream_failed", error=str(exc), error_type=type(exc).__name__)
    except Exception:  # never let a bug surface as a broken 500 after the headers
        log.exception("history.stream_bug")
    finally:
        if pending is not None:
            await _cancelled(pending)
        await source.close()
        STREAM_CLIENTS.dec()


def parse_values(values: Iterable[str] | None) -> list[str]:
    """Repeatable, comma-separated query values as one flat list."""
    return [v.strip() for raw in values or () for v in raw.split(",") if v.strip()]


def canonical_uuids(values: Collection[str]) -> frozenset[str] | None:
    """The values as canonical uuids, or None when one is not a uuid."""
    try:
        return frozenset(str(uuid.UUID(v)) for v in values)
    except ValueError:
        return None


def wire_for(accept: str | None) -> Wire:
    """NDJSON when the client accepts it, else SSE."""
    return NDJSON if NDJSON_MEDIA_TYPE in (accept or "") else SSE


def log_filter(job: list[str] | None, type_: list[str] | None) -> LogFilter:
    """The `job` and `type` query values of /events/stream; 400 for a non-uuid job or an
    event type ftq does not know."""
    jobs = canonical_uuids(parse_values(job))
    if jobs is None:
        raise invalid("job must be job ids (uuids)", [{"field": "job", "problem": "not a uuid"}])
    types = frozenset(parse_values(type_))
    unknown = sorted(types - codec.EVENT_TYPES.keys())
    if unknown:
        known = ", ".join(sorted(codec.EVENT_TYPES))
        raise invalid(
            f"unknown event type {unknown[0]!r}; known types: {known}",
            [{"field": "type", "problem": f"unknown event type {t!r}"} for t in unknown],
        )
    return LogFilter(jobs=jobs, types=types)


def log_source(
    pool: asyncpg.Pool,
    watcher: LogWatcher,
    after: Cursor,
    wire: Wire,
    wanted: LogFilter,
    *,
    user_id: str,
    is_admin: bool,
) -> LogSource:
    """The log as a caller may see it: an admin everything (with each job's owner), a member
    the events of their own jobs."""
    keep = None if is_admin else OwnedJobs(pool, user_id).keep
    emails = OwnerEmails(pool) if is_admin else None
    return LogSource(pool, watcher, after, wire, keep, wanted, emails)


def stream_response(request: Request[Any, Any, Any], source: Source, wire: Wire) -> Stream:
    """The streaming response of `source`, with the app's heartbeat interval."""
    heartbeat_s = float(request.app.state.get(HEARTBEAT_STATE_KEY, HEARTBEAT_S))
    return Stream(
        framed(source, wire, heartbeat_s), media_type=wire.media_type, headers=STREAM_HEADERS
    )
