"""A failed tool call in ftq's error shape, `{"error": {"code", "message", "details"}}`: the
API's own error body passed through, or one of the same shape made here (bad arguments, ftq
unreachable, no key)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

from service.api.messages import plain

_AT: Final = re.compile(r"^(?P<problem>.*?) - at `\$\.?(?P<path>[^`]*)`$")
_MISSING: Final = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")


class ToolFailure(Exception):
    """Raised by a tool; answered as an MCP tool error (isError) carrying `body()`."""

    def __init__(self, code: str, message: str, details: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = [dict(d) for d in details]

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def from_response(status: int, raw: bytes) -> ToolFailure:
    """The API's error body as a failure; a body that is not ftq's (a proxy's HTML page, a
    wrong FTQ_URL) is UNAVAILABLE with the status and the start of the text."""
    try:
        error = msgspec.json.decode(raw)["error"]
        details = error.get("details") or []
        return ToolFailure(str(error["code"]), str(error["message"]), list(details))
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        text = raw.decode(errors="replace").strip()[:200]
        return ToolFailure("UNAVAILABLE", f"HTTP {status} that is not ftq's answer: {text}")


def invalid_arguments(
    tool: str,
    exc: msgspec.ValidationError,
    schema: Mapping[str, Any],
    forms: Mapping[str, str],
) -> ToolFailure:
    """msgspec's message (`Expected int >= 1 - at $.gpu_count`) as one `{field, problem}`;
    for an enum argument the problem also lists the allowed values (msgspec's does not), and
    a field with a pattern says in `forms`' words what it takes (not the raw regex)."""
    problem, field = str(exc), ""
    if match := _AT.match(problem):
        problem, field = match["problem"], match["path"].replace("[", ".").replace("]", "")
    if match := _MISSING.match(problem):
        problem, field = "required", ".".join(p for p in (field, match["field"]) if p)
    elif match := _UNKNOWN.match(problem):
        problem, field = "unknown argument", ".".join(p for p in (field, match["field"]) if p)
    prop = schema.get("properties", {}).get(field, {})
    enums = [c["enum"] for c in [prop, *prop.get("anyOf", [])] if "enum" in c]
    if "matching regex" in problem and field in forms:
        problem = f"must be {forms[field]}"
    elif not enums:
        problem = plain(field, problem)
    detail: dict[str, Any] = {"field": field or "arguments", "problem": problem}
    if enums:
        detail["allowed"] = sorted(enums[0])
        detail["problem"] = f"{problem}; allowed: {', '.join(detail['allowed'])}"
    message = f"invalid arguments for {tool}: {field or 'arguments'}: {detail['problem']}"
    return ToolFailure("VALIDATION_ERROR", message, [detail])
