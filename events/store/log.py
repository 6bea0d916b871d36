"""The generic event store: append with optimistic concurrency, read a stream, read the log.

It knows nothing about event types: ``data`` arrives and leaves as encoded JSON.

Calling convention for writers (the wake-up choice is measured in ``bench/event_store.py``)::

    async with conn.transaction():
        recorded = await append(conn, stream_id, expected_version, events, metadata)
        ...  # projection updates in the same transaction
    waker.wake([stream_id])  # after commit: the process's coalesced NOTIFY (events.store.waker)

(or ``await notify_appended(conn, [stream_id])`` after the commit, for a one-off writer).

The wake-up is sent after commit and coalesced, never inside the appending transaction:
PostgreSQL serialises the commits of transactions that have NOTIFYed (a cluster-wide lock
held through the commit's WAL flush). Measured with 8 writers on this 2-core machine, as a
share of a plain single-row INSERT (README "Measured"): append + coalesced wake-up about
0.7-0.8x; append + its own NOTIFY after commit 0.44x; NOTIFY inside the transaction 0.28x.
A crash between commit and wake-up only delays tailers until their fallback timer; they never
miss the event, because they read the log, not the notification.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Final

import asyncpg
import msgspec

from events.store.errors import InvalidEventData, StreamVersionConflict, UnknownPosition
from events.store.sql import QUERIES

CHANNEL: Final = "ftq_events"

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append; ``data`` is an encoded JSON object."""

    type: str
    data: bytes
    schema_version: int = 1


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as stored in the log."""

    position: int
    transaction_id: int
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    data: bytes
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.transaction_id, self.position)


class Cursor(msgspec.Struct, frozen=True, order=True):
    """A place in the log's read order, (transaction_id, position); START is before everything."""

    transaction_id: int
    position: int

    START: ClassVar[Cursor]


Cursor.START = Cursor(0, 0)

_metadata_decoder: Final = msgspec.json.Decoder(dict[str, Any])
_json_encoder: Final = msgspec.json.Encoder()
_woken_decoder: Final = msgspec.json.Decoder(list[str])
MAX_PAYLOAD: Final = 7999  # bytes; PostgreSQL refuses a NOTIFY payload of 8000 or more


def _checked_json_text(data: bytes) -> str:
    """Cheap checks only: PostgreSQL parses the JSON anyway (``append`` maps its refusal to
    ``InvalidEventData``), and text starting with ``{`` that parses is an object."""
    if not data.lstrip(b" \t\r\n").startswith(b"{"):
        raise InvalidEventData("event data is not a JSON object")
    if b"\\u0000" in data:
        raise InvalidEventData("event data contains \\u0000, which jsonb cannot store")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise InvalidEventData(f"event data is not UTF-8: {exc}") from exc


def recorded_event(row: asyncpg.Record, *, with_metadata: bool = True) -> RecordedEvent:
    """An event row (columns as query `read_all` selects them) as a `RecordedEvent`;
    `with_metadata=False` leaves its metadata out (readers that never look at it)."""
    return RecordedEvent(
        position=row[0],
        transaction_id=row[1],
        stream_id=row[2],
        stream_version=row[3],
        type=row[4],
        schema_version=row[5],
        data=row[6].encode(),
        metadata=_metadata_decoder.decode(row[7]) if with_metadata else {},
        recorded_at=row[8],
    )


class Prepared(msgspec.Struct, frozen=True):
    """Events and metadata checked and encoded for an append statement."""

    events: Sequence[NewEvent]
    datas: list[str]
    metadata: dict[str, Any]
    metadata_json: str


def prepare(events: Sequence[NewEvent], metadata: Mapping[str, Any]) -> Prepared:
    """Check and encode an append's arguments (``InvalidEventData`` when they cannot be)."""
    datas = [_checked_json_text(e.data) for e in events]
    meta = dict(metadata)
    try:
        meta_json = _json_encoder.encode(meta).decode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidEventData(f"metadata is not JSON-encodable: {exc}") from exc
    return Prepared(events, datas, meta, meta_json)


def new_stream_args(stream_id: str, prepared: Prepared) -> tuple[Any, ...]:
    """``$1..$5`` of ``append_new_stream``, for a statement that embeds it (one event)."""
    (first,) = prepared.events
    return (stream_id, first.type, first.schema_version, prepared.datas[0], prepared.metadata_json)


def new_streams_args(streams: Sequence[tuple[str, Prepared]]) -> tuple[list[Any], ...]:
    """The events of several new streams (one each) as five arrays: stream ids, types, schema
    versions, data, metadata (query ``record_new_jobs`` of the projections appends them)."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [])
    for stream_id, prepared in streams:
        for column, value in zip(columns, new_stream_args(stream_id, prepared), strict=True):
            column.append(value)
    return columns


@contextlib.contextmanager
def append_errors(stream_id: str, expected_version: int) -> Iterator[None]:
    """PostgreSQL's refusals of an append statement as the store's typed errors."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        if exc.table_name not in (None, "events"):
            raise  # a unique index of a table written in the same statement
        raise StreamVersionConflict(stream_id, expected_version, None) from exc
    except (asyncpg.InvalidTextRepresentationError, asyncpg.UntranslatableCharacterError) as exc:
        raise InvalidEventData(f"event data is not valid JSON: {exc}") from exc


def recorded(
    stream_id: str,
    expected_version: int,
    prepared: Prepared,
    rows: Sequence[asyncpg.Record | tuple[Any, ...]],
) -> list[RecordedEvent]:
    """The appended events, from the rows (position, transaction_id, recorded_at) the append
    statement returned. ``data`` is as given; read back, it is jsonb's normal form (the same
    JSON value, keys reordered, whitespace normalised)."""
    return [
        RecordedEvent(
            position=row[0],
            transaction_id=row[1],
            stream_id=stream_id,
            stream_version=expected_version + n,
            type=event.type,
            schema_version=event.schema_version,
            data=event.data,
            metadata=prepared.metadata,
            recorded_at=row[2],
        )
        for n, (row, event) in enumerate(zip(rows, prepared.events, strict=True), start=1)
    ]


async def append(
    conn: Connection,
    stream_id: str,
    expected_version: int,
    events: Sequence[NewEvent],
    metadata: Mapping[str, Any],
) -> list[RecordedEvent]:
    """Append ``events`` to a stream that must be at ``expected_version`` (0: must not exist).

    One statement, so it is atomic even outside a transaction; it never commits by itself.
    On ``StreamVersionConflict`` or ``InvalidEventData`` nothing was written and the caller
    must roll back its transaction (PostgreSQL may already have aborted it). It does not
    NOTIFY: call ``notify_appended`` or a ``Waker`` after the commit.
    """
    if expected_version < 0:
        raise ValueError("expected_version must be >= 0")
    if not events:
        return []
    prepared = prepare(events, metadata)
    with append_errors(stream_id, expected_version):
        if expected_version == 0 and len(events) == 1:
            args = new_stream_args(stream_id, prepared)
            rows = await conn.fetch(QUERIES["append_new_stream"], *args)
        else:
            rows = await conn.fetch(
                QUERIES["append"],
                stream_id,
                expected_version,
                [e.type for e in events],
                [e.schema_version for e in events],
                prepared.datas,
                prepared.metadata_json,
            )
    if not rows:
        actual = await conn.fetchval(QUERIES["stream_version"], stream_id)
        raise StreamVersionConflict(stream_id, expected_version, actual)
    return recorded(stream_id, expected_version, prepared, rows)


async def notify_appended(conn: Connection, stream_ids: Iterable[str]) -> None:
    """Wake tailers (channel ``ftq_events``); call right after commit. The payloads are JSON
    arrays of stream ids (``woken_streams`` reads them), as few as fit PostgreSQL's 8000-byte
    payload limit, so a listener handles one notification per batch, not one per stream. (A
    stream id too long for any payload is left out.)"""
    payloads = notify_payloads(stream_ids)
    if payloads:
        await conn.execute(QUERIES["notify_appended"], payloads)


def notify_payloads(stream_ids: Iterable[str]) -> list[str]:
    payloads: list[str] = []
    batch: list[str] = []
    size = 2
    for stream_id in sorted(set(stream_ids)):
        encoded = _json_encoder.encode(stream_id)
        if len(encoded) + 1 > MAX_PAYLOAD - 2:
            continue  # cannot be notified: its tailers find it on their fallback timer
        if batch and size + len(encoded) + 1 > MAX_PAYLOAD:
            payloads.append(_json_encoder.encode(batch).decode())
            batch, size = [], 2
        batch.append(stream_id)
        size += len(encoded) + 1
    if batch:
        payloads.append(_json_encoder.encode(batch).decode())
    return payloads


def woken_streams(payload: str) -> list[str]:
    """The stream ids of a notification on ``CHANNEL``. A payload that is not a JSON array of
    strings is taken as one plain stream id, as releases before batching sent them."""
    try:
        return _woken_decoder.decode(payload)
    except msgspec.DecodeError:
        return [payload] if payload else []


async def read_stream(
    conn: Connection, stream_id: str, after_version: int = 0
) -> list[RecordedEvent]:
    """The stream's events with a version above ``after_version``, in version order."""
    rows = await conn.fetch(QUERIES["read_stream"], stream_id, after_version)
    return [recorded_event(r) for r in rows]


async def read_all(conn: Connection, after: Cursor, limit: int) -> list[RecordedEvent]:
    """Up to ``limit`` events after ``after`` in (transaction_id, position) order, gap-free.

    Events of transactions at or above the oldest still-running transaction are held back,
    so an event that commits later can never land before an event already returned.
    """
    rows = await conn.fetch(QUERIES["read_all"], after.transaction_id, after.position, limit)
    return [recorded_event(r) for r in rows]


async def committed_after(conn: Connection, after: Cursor) -> bool:
    """Whether committed events exist after ``after`` (even ones ``read_all`` holds back)."""
    return bool(
        await conn.fetchval(QUERIES["committed_after"], after.transaction_id, after.position)
    )


async def cursor_at_position(conn: Connection, position: int) -> Cursor:
    """The cursor just after the event at ``position`` (0: START), to resume a reader that
    only kept a plain position, e.g. an SSE Last-Event-ID."""
    if position == 0:
        return Cursor.START
    row = await conn.fetchrow(QUERIES["cursor_at_position"], position)
    if row is None:
        raise UnknownPosition(position)
    return Cursor(row[0], row[1])


async def head_cursor(conn: Connection) -> Cursor:
    """The cursor after the last event ``read_all`` can return now (START for an empty log)."""
    row = await conn.fetchrow(QUERIES["head_cursor"])
    return Cursor.START if row is None else Cursor(row[0], row[1])
