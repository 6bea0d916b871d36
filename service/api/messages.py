"""Validation problems in plain words: what was wrong and what is allowed.

msgspec and Litestar describe a bad value in their own terms ("Invalid enum value 'X'",
"Expected `str` matching regex '^...$'", "Input data was truncated"); these turn them into
sentences a user can act on, naming the allowed values."""

from __future__ import annotations

import re
from typing import Final, get_args

from events.domain.directory_events import Role
from events.domain.job_events import JobStatus, Kind
from service.api.schemas import GpuType

ALLOWED: Final[dict[str, tuple[str, ...]]] = {
    "kind": get_args(Kind),
    "state": get_args(JobStatus),
    "job_state": get_args(JobStatus),
    "gpu_type": get_args(GpuType),
    "role": get_args(Role),
}
# What a field's regex means, in words (the regex itself is no help to a user).
PATTERN_WORDS: Final[dict[str, str]] = {
    "email": "must be an email address such as name@example.com",
    "Idempotency-Key": "must be 1 to 255 printable ASCII characters, not only spaces",
}
_ENUM: Final = re.compile(r"^Invalid enum value (?P<got>.*)$")
_REGEX: Final = re.compile(r"^Expected `str` matching regex ")
_BOUND: Final = re.compile(r"^Expected `(?P<type>\w+)` (?P<op>>=|<=|>|<) (?P<n>-?[\d.]+)$")
_LENGTH: Final = re.compile(r"^Expected `(?P<type>\w+)` of length (?P<op>>=|<=) (?P<n>\d+)$")
_TYPE: Final = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_TYPE_WORDS: Final = {
    "int": "an integer",
    "str": "a string",
    "float": "a number",
    "bool": "true or false",
    "object": "a JSON object",
    "array": "a JSON array",
    "null": "null",
    "int | null": "an integer or null",
    "str | null": "a string or null",
}
_OP_WORDS: Final = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}
_UNIT: Final = {"str": "characters", "array": "items", "object": "fields"}
# msgspec/Litestar's words for a body that is not JSON.
_JSON_WORDS: Final = {
    "Input data was truncated": "the JSON ends too early (truncated)",
}


def plain(field: str, problem: str) -> str:
    """`problem` (as msgspec or Litestar put it) for `field`, in plain words."""
    name = field.rsplit(".", 1)[-1]
    if match := _ENUM.match(problem):
        allowed = ALLOWED.get(name)
        if allowed:
            return f"must be one of {', '.join(allowed)} (got {match['got']})"
        return f"is not an allowed value (got {match['got']})"
    if _REGEX.match(problem):
        return PATTERN_WORDS.get(name, "has the wrong format")
    if match := _LENGTH.match(problem):
        unit = _UNIT.get(match["type"], "long")
        return f"must be {_OP_WORDS[match['op']]} {match['n']} {unit}"
    if match := _BOUND.match(problem):
        kind = "an integer" if match["type"] == "int" else "a number"
        return f"must be {kind}, {_OP_WORDS[match['op']]} {match['n']}"
    if match := _TYPE.match(problem):
        want = _TYPE_WORDS.get(match["want"], f"`{match['want']}`")
        got = _TYPE_WORDS.get(match["got"], match["got"])
        return f"must be {want}, not {got}"
    return problem


def json_problem(message: str) -> str | None:
    """A plain reading of a JSON decoding error, or None when `message` is not one."""
    if message in _JSON_WORDS:
        return _JSON_WORDS[message]
    if message.startswith(("JSON is malformed", "Invalid JSON", "Expected `object`")):
        return "the body is not valid JSON"
    return None
