"""Pure pieces of `ftq mcp`: every tool has a handler, argument errors in ftq's shape,
answers that are not ftq's, and the next-page cursor of a `Link` header."""

from __future__ import annotations

import pytest

from service.mcp.client import next_cursor
from service.mcp.errors import ToolFailure, from_response
from service.mcp.handlers import HANDLERS
from service.mcp.tools import TOOL_BY_NAME, TOOLS


def test_every_tool_has_a_handler_and_an_object_schema() -> None:
    assert set(HANDLERS) == set(TOOL_BY_NAME) and len(TOOLS) == len(TOOL_BY_NAME)
    for tool in TOOLS:
        schema = tool.input_schema()
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert "$ref" not in str(schema)  # self-contained: clients need no $defs


@pytest.mark.parametrize(
    ("arguments", "field", "problem"),
    [
        ({"kind": "SFT"}, "fireworks_payload", "required"),
        ({"kind": "SFT", "fireworks_payload": {}, "gpu_count": 1025}, "gpu_count", "at most 1024"),
        ({"kind": "SFT", "fireworks_payload": {}, "gpu_count": True}, "gpu_count", "true or false"),
        ({"kind": "SFT", "fireworks_payload": [], "gpu_count": 4}, "fireworks_payload", "object"),
        ({"kind": "SFT", "fireworks_payload": {}, "gpu_type": "a100"}, "gpu_type", "b200, h100"),
        (
            {"kind": "SFT", "fireworks_payload": {}, "display_name": "x" * 201},
            "display_name",
            "200",
        ),
        (
            {"kind": "SFT", "fireworks_payload": {}, "idempotency_key": " "},
            "idempotency_key",
            "ASCII",
        ),
        ({"kind": "SFT", "fireworks_payload": {}, "user": "a"}, "user", "unknown argument"),
        (
            {"kind": "SFT", "fireworks_payload": {}, "max_runtime_minutes": 0},
            "max_runtime_minutes",
            "at least 1",
        ),
        (
            {"kind": "SFT", "fireworks_payload": {}, "max_runtime_minutes": 43201},
            "max_runtime_minutes",
            "43200",
        ),
        ({"kind": "DPO", "fireworks_payload": {}, "after": ["sft-1"]}, "after.0", "UUID"),
    ],
)
def test_bad_arguments_name_the_field(
    arguments: dict[str, object], field: str, problem: str
) -> None:
    with pytest.raises(ToolFailure) as caught:
        TOOL_BY_NAME["submit_job"].parse(arguments)
    failure = caught.value
    assert failure.code == "VALIDATION_ERROR"
    assert failure.details[0]["field"] == field
    assert problem in failure.details[0]["problem"]
    assert failure.body()["error"]["details"] == failure.details


def test_good_arguments_keep_their_defaults() -> None:
    parsed = TOOL_BY_NAME["list_jobs"].parse(None)
    assert parsed == TOOL_BY_NAME["list_jobs"].arguments(limit=100)


def test_an_answer_that_is_not_ftq_s_is_unavailable() -> None:
    ftq = from_response(404, b'{"error": {"code": "NOT_FOUND", "message": "no such job"}}')
    assert (ftq.code, ftq.message, ftq.details) == ("NOT_FOUND", "no such job", [])
    proxy = from_response(502, b"<html>Bad Gateway</html>")
    assert proxy.code == "UNAVAILABLE" and "HTTP 502" in proxy.message
    assert from_response(500, b"").code == "UNAVAILABLE"


def test_the_next_cursor_comes_from_the_link_header() -> None:
    link = '<http://ftq:8000/jobs?limit=1&state=QUEUED&cursor=abc_-1>; rel="next"'
    assert next_cursor({"Link": link}) == "abc_-1"
    assert next_cursor({}) is None
    assert next_cursor({"Link": '<http://ftq/jobs?limit=1>; rel="next"'}) is None
