"""The opaque cursor of GET /jobs (the last row's creation time, in microseconds since the
epoch, and id: `<digits>.<32 hex digits>`) and the `Link: <...>; rel="next"` header.

The cursor's form is a regular pattern (`CURSOR`, in the OpenAPI document too) and every
string matching it is a cursor the server takes, so the document says exactly which
cursors are refused (400)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Request

from service.api.errors import invalid

MAX_DIGITS: Final = 16  # microseconds since 1970: up to the year 2286
CURSOR: Final = f"^[0-9]{{1,{MAX_DIGITS}}}\\.[0-9a-f]{{32}}$"
MAX_CURSOR: Final = MAX_DIGITS + 1 + 32
_CURSOR: Final = re.compile(CURSOR)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(created_at: datetime, job_id: str) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{uuid.UUID(job_id).hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor stands for; anything not of its form is 400."""
    if not _CURSOR.fullmatch(cursor):
        raise invalid("cursor is not valid", [{"field": "cursor", "problem": "invalid"}])
    micros, job_id = cursor.split(".")
    return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=job_id)


def next_link(request: Request[Any, Any, Any], cursor: str) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", cursor))
    url = request.url
    return f'<{url.scheme}://{url.netloc}{url.path}?{urlencode(params)}>; rel="next"'
