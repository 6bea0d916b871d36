"""The jobs page: search by name or id, state and kind chips, an admin filter by user, the
filters kept in the URL, newest first with a cursor of (created_at, id)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Request, get
from litestar.response import Template

from service.api.errors import ApiError
from service.ui.web import signed_in

STATES: Final = ("QUEUED", "PROGRESS", "SUCCESS", "FAIL", "CANCELLED")
KINDS: Final = ("SFT", "DPO", "RFT")
PAGE: Final = 50
MAX_SEARCH: Final = 200

# $1 user id (NULL: all), $2 states, $3 kinds, $4 name search (ILIKE pattern, NULL: none),
# $5 exact id (NULL: none), $6 owner email (admins), $7/$8 cursor, $9 limit.
_PAGE_SQL: Final = """
SELECT id::text, kind, state, display_name, gpu_count, created_at, user_email
FROM jobs
WHERE ($1::uuid IS NULL OR user_id = $1::uuid)
  AND state = ANY($2::text[]) AND kind = ANY($3::text[])
  AND ($4::text IS NULL OR display_name ILIKE $4 OR ($5::uuid IS NOT NULL AND id = $5::uuid))
  AND ($6::text IS NULL OR user_email = $6)
  AND ($7::timestamptz IS NULL OR (created_at, id) < ($7, $8::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $9
"""


def _bad(message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message)


def encode_cursor(created_at: datetime, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{job_id}".encode()).decode()


def decode_cursor(text: str) -> tuple[datetime, str]:
    try:
        at, _, job_id = base64.urlsafe_b64decode(text.encode()).decode().partition("|")
        return datetime.fromisoformat(at), str(uuid.UUID(job_id))
    except (ValueError, binascii.Error, UnicodeError):
        raise _bad("cursor is not one this page gave out") from None


def _picked(values: list[str], allowed: tuple[str, ...], name: str) -> list[str]:
    picked = [v.upper() for v in values if v]
    if unknown := [v for v in picked if v not in allowed]:
        raise _bad(f"{name} must be one of {', '.join(allowed)} (got {unknown[0][:40]})")
    return picked


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _as_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


@get("/ui/jobs", include_in_schema=False)
async def jobs_page(request: Request[Any, Any, Any]) -> Template:
    signed = await signed_in(request)
    params = request.query_params
    q = (params.get("q") or "").strip()
    if len(q) > MAX_SEARCH or "\x00" in q:
        raise _bad(f"search must be at most {MAX_SEARCH} characters of text")
    states = _picked(params.getall("state", []), STATES, "state")
    kinds = _picked(params.getall("kind", []), KINDS, "kind")
    user = (params.get("user") or "").strip() if signed.caller.is_admin else ""
    if len(user) > 320 or "\x00" in user:
        raise _bad("user must be an email address")
    after = params.get("after")
    cursor = decode_cursor(after) if after else (None, None)
    rows = await signed.runtime.pool.fetch(
        _PAGE_SQL,
        None if signed.caller.is_admin else signed.caller.user_id,
        states or list(STATES),
        kinds or list(KINDS),
        _like(q) if q else None,
        _as_uuid(q) if q else None,
        user or None,
        cursor[0],
        cursor[1],
        PAGE + 1,
    )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    kept: list[tuple[str, str]] = [("q", q)] if q else []
    kept += [("state", s) for s in states] + [("kind", k) for k in kinds]
    kept += [("user", user)] if user else []
    next_url = None
    if more:
        last = rows[-1]
        next_url = "/ui/jobs?" + urlencode([*kept, ("after", encode_cursor(last[5], last[0]))])
    context = signed.context(
        "jobs",
        rows=rows,
        q=q,
        states=states,
        kinds=kinds,
        user=user,
        all_states=STATES,
        all_kinds=KINDS,
        next_url=next_url,
        first_url=("/ui/jobs?" + urlencode(kept)) if after else None,
    )
    return Template("jobs.html", context=context)


ROUTES: Final = [jobs_page]
