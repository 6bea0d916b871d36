"""Errors raised by the event store."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base of every event store error."""


class StreamVersionConflict(EventStoreError):
    """The stream was not at the expected version: reload its state and decide again.

    ``actual`` is None when the stream's unique version index refused the append (a concurrent
    append won the race, or the stream was already past ``expected``); the caller's
    transaction is then aborted and must be rolled back.
    """

    def __init__(self, stream_id: str, expected: int, actual: int | None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        found = "a later version" if actual is None else f"version {actual}"
        super().__init__(f"stream {stream_id!r}: expected version {expected}, found {found}")


class InvalidEventData(EventStoreError):
    """An event's data is not a JSON object that PostgreSQL can store as jsonb."""


class UnknownPosition(EventStoreError):
    """No event has this global position."""

    def __init__(self, position: int) -> None:
        self.position = position
        super().__init__(f"no event at position {position}")
