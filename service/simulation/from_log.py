"""`ftq simulate --from-log`: read this deployment's event log into a `History`."""

from __future__ import annotations

from typing import Final

from events.domain.codec import UnknownEventType, decode
from events.domain.simulation.history import RELEVANT, History
from events.store.log import Connection, Cursor, read_all

PAGE: Final = 5000


async def read_history(conn: Connection, page: int = PAGE) -> History:
    """Fold the whole log (every job's submission, admissions and end; the per-user caps)."""
    history = History()
    cursor = Cursor.START
    while True:
        batch = await read_all(conn, cursor, page)
        for recorded in batch:
            if recorded.type not in RELEVANT:
                continue
            try:
                event = decode(recorded.type, recorded.schema_version, recorded.data)
            except UnknownEventType:
                continue  # a newer ftq's event: not part of what the fold reads
            history.apply(recorded.stream_id, event)
        if len(batch) < page:
            return history
        cursor = batch[-1].cursor
