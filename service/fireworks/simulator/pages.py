"""List pagination (opaque tokens, pageSize 50 default, 200 cap) and the minimal state filter."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from .state import SimError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
STATE_FILTER = re.compile(r'^\s*state\s*(!=|=)\s*"?([A-Za-z0-9_]+)"?\s*$')


def state_filter(expr: str) -> tuple[bool, str] | None:
    """`(negated, state)` for `state="X"` / `state!="X"`; None for an empty filter."""
    if not expr.strip():
        return None
    match = STATE_FILTER.match(expr)
    if match is None:
        raise SimError("INVALID_ARGUMENT", f"unsupported filter: {expr}")
    return match.group(1) == "!=", match.group(2)


def keep(item: Mapping[str, Any], rule: tuple[bool, str] | None) -> bool:
    if rule is None:
        return True
    negated, state = rule
    return (item.get("state") == state) != negated


def order(items: list[dict[str, Any]], order_by: str) -> list[dict[str, Any]]:
    """Sort by `name` (default) or another top-level field, with an optional ` desc`."""
    spec = (order_by or "name").split(",")[0].strip().split()
    field = spec[0] if spec else "name"
    descending = len(spec) > 1 and spec[1].lower() == "desc"
    return sorted(items, key=lambda i: str(i.get(field, "")), reverse=descending)


def page(items: list[dict[str, Any]], key: str, query: Mapping[str, str]) -> dict[str, Any]:
    """One page of `items` under `key`, with `nextPageToken` and `totalSize`."""
    rule = state_filter(query.get("filter", ""))
    selected = order([i for i in items if keep(i, rule)], query.get("orderBy", ""))
    try:
        size = int(query.get("pageSize") or DEFAULT_PAGE_SIZE)
    except ValueError:
        raise SimError("INVALID_ARGUMENT", "pageSize must be an integer") from None
    size = DEFAULT_PAGE_SIZE if size <= 0 else min(size, MAX_PAGE_SIZE)
    fingerprint = [query.get("filter", ""), query.get("orderBy", "")]
    offset = 0
    if token := query.get("pageToken"):
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            offset, token_fingerprint = int(decoded["o"]), decoded["f"]
        except (ValueError, KeyError, TypeError):
            raise SimError("INVALID_ARGUMENT", "invalid page token") from None
        if token_fingerprint != fingerprint:
            raise SimError("INVALID_ARGUMENT", "page token does not match the request")
    body: dict[str, Any] = {key: selected[offset : offset + size], "totalSize": len(selected)}
    if offset + size < len(selected):
        raw = json.dumps({"o": offset + size, "f": fingerprint}).encode()
        body["nextPageToken"] = base64.urlsafe_b64encode(raw).decode()
    return body
