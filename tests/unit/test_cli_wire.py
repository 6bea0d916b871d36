"""Pure pieces of the `ftq` client: SSE event blocks and API error bodies."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import typer
from typer.testing import CliRunner

from service.cli.admin import _parse_cap
from service.cli.app import app as cli_app
from service.cli.http import error_text
from service.cli.watch import _parse


def test_sse_block_gives_position_type_and_data() -> None:
    block = (
        b'id: 42\nevent: job.succeeded\ndata: {"position": 42, "type": "job.succeeded", '
        b'"data": {"fireworks_state": "JOB_STATE_COMPLETED"}}'
    )
    assert _parse(block) == (42, "job.succeeded", {"fireworks_state": "JOB_STATE_COMPLETED"})


def test_sse_comments_and_keepalives_are_not_events() -> None:
    assert _parse(b": keepalive") is None
    assert _parse(b"") is None


def test_sse_multi_line_data_is_joined() -> None:
    parsed = _parse(b'data: {"type": "job.submitted",\ndata:  "data": {}}')
    assert parsed == (None, "job.submitted", {})


def test_error_body_becomes_code_and_message() -> None:
    body = b'{"error": {"code": "NOT_FOUND", "message": "no such job", "details": []}}'
    assert error_text(404, body) == "NOT_FOUND: no such job"
    assert error_text(502, b"<html>bad gateway</html>") == "HTTP 502: <html>bad gateway</html>"
    assert error_text(500, b"") == "HTTP 500"


def test_cap_is_a_count_default_or_none() -> None:
    assert _parse_cap("3") == (3, False)
    assert _parse_cap("default") == (None, False)
    assert _parse_cap("None") == (None, True)
    for bad in ("-1", "1.5", "many"):
        with pytest.raises(typer.BadParameter):
            _parse_cap(bad)


def test_every_error_detail_is_printed_on_one_line() -> None:
    """Issue 13 item 8: the CLI shows each `details` entry (field and problem)."""
    body = msgspec.json.encode(
        {
            "error": {
                "code": "VALIDATION_ERROR",
                "message": "fireworks_payload is not a valid SFT job",
                "details": [
                    {"field": "fireworks_payload.warmStartFrom", "problem": "give one, not both"},
                    {"field": "fireworks_payload.dataset", "problem": "required"},
                ],
            }
        }
    )
    text = error_text(400, body)
    assert text == (
        "VALIDATION_ERROR: fireworks_payload is not a valid SFT job "
        "(fireworks_payload.warmStartFrom: give one, not both; "
        "fireworks_payload.dataset: required)"
    )
    assert "\n" not in text


def test_submit_of_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Issue 13 item 8: `ftq submit nofile.json` is one line on stderr, no traceback."""
    import service.cli.client  # noqa: F401, PLC0415  (registers `submit`)

    result = CliRunner().invoke(cli_app, ["submit", str(tmp_path / "nofile.json")])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "cannot read" in result.output and "nofile.json" in result.output
