"""The opaque cursor of GET /jobs (base64url of the last row's (created_at, id)) and the
`Link: <...>; rel="next"` header."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request

from service.api.errors import invalid


def encode_cursor(created_at: datetime, job_id: str) -> str:
    raw = msgspec.json.encode([created_at.isoformat(), job_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor stands for; a malformed or tampered one is 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = msgspec.json.decode(raw, type=tuple[str, str])
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at, uuid.UUID(job_id)
    except (binascii.Error, ValueError, msgspec.DecodeError, UnicodeError):
        raise invalid("cursor is not valid", [{"field": "cursor", "problem": "invalid"}]) from None


def next_link(request: Request[Any, Any, Any], cursor: str) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", cursor))
    url = request.url
    return f'<{url.scheme}://{url.netloc}{url.path}?{urlencode(params)}>; rel="next"'
