"""Every 400 says in plain words what was wrong and what is allowed (issue 13 item 12), and
the error codes are the contract's list (item 11)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import SFT_PAYLOAD, Users, bearer, sft

CASES: list[tuple[str, str, Any, dict[str, str], str, str]] = [
    ("POST", "/jobs", {**sft(), "kind": "XYZ"}, {}, "kind", "must be one of SFT, DPO, RFT"),
    ("POST", "/jobs", sft(gpu_type="a100"), {}, "gpu_type", "must be one of h200, b200, h100"),
    ("POST", "/jobs", sft(), {"Idempotency-Key": " "}, "Idempotency-Key", "printable ASCII"),
    ("POST", "/admin/users", {"email": "not-an-email"}, {}, "email", "name@example.com"),
    ("POST", "/jobs", b'{"kind":"SFT"', {}, "body", "truncated"),
    ("GET", "/jobs?state=NOPE", None, {}, "state", "QUEUED, PROGRESS, SUCCESS, FAIL, CANCELLED"),
    ("GET", "/jobs?limit=0", None, {}, "limit", "at least 1"),
    ("POST", "/jobs", sft(gpu_count="4"), {}, "gpu_count", "must be an integer, not a string"),
    ("POST", "/jobs", sft(gpu_count=0), {}, "gpu_count", "at least 1"),
    ("POST", "/jobs", sft(display_name="x" * 201), {}, "display_name", "at most 200 characters"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "field", "words"), CASES)
async def test_validation_errors_are_plain_words(
    app_client: AsyncTestClient[Litestar],
    users: Users,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    field: str,
    words: str,
) -> None:
    kw: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    all_headers = {**bearer(users.admin), **headers, "Content-Type": "application/json"}
    resp = await app_client.request(method, path, headers=all_headers, **kw)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert {"field": field, "problem": error["details"][0]["problem"]} == error["details"][0]
    assert words in error["details"][0]["problem"] and words in error["message"], error
    for raw in ("regex", "Expected `", "Invalid enum", "Input data", "\\x"):
        assert raw not in resp.text, (raw, resp.text)


async def test_a_wrong_method_is_405_in_the_error_shape(
    app_client: AsyncTestClient[Litestar], users: Users
) -> None:
    resp = await app_client.put("/jobs", headers=bearer(users.alice), json=SFT_PAYLOAD)
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_a_201_names_the_new_job_in_location(
    app_client: AsyncTestClient[Litestar], users: Users
) -> None:
    """Issue 13 item 14: `Location` on 201, under the compatibility alias too."""
    for prefix in ("", "/functions/v1/jobs-api"):
        made = await app_client.post(f"{prefix}/jobs", json=sft(), headers=bearer(users.alice))
        assert made.status_code == 201, made.text
        assert made.headers["Location"] == f"{prefix}/jobs/{made.json()['id']}"
        shown = await app_client.get(made.headers["Location"], headers=bearer(users.alice))
        assert shown.json()["id"] == made.json()["id"]


async def test_post_jobs_documents_its_body_as_before_its_strict_decoding(
    app_client: AsyncTestClient[Litestar], users: Users
) -> None:
    """POST /jobs decodes its body once, strictly (service.api.common.StrictDTO); the
    OpenAPI document still gives the body as the JobSubmission schema, and a value Litestar's
    lenient path would coerce ("4" for 4) or an empty body are 400s in the error shape."""
    schema = (await app_client.get("/schema/openapi.json")).json()
    body = schema["paths"]["/jobs"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobSubmission"
    }
    assert body["required"] is True
    headers = {**bearer(users.alice), "Content-Type": "application/json"}
    for raw, field in ((b"", "body"), (b'{"kind": "SFT", "fireworks_payload": {}, "x": 1}', "x")):
        resp = await app_client.post("/jobs", headers=headers, content=raw)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["details"][0]["field"] == field
    good = await app_client.post("/jobs", headers=bearer(users.alice), json=sft(gpu_count=2))
    assert good.status_code == 201, good.text
    assert good.json()["gpu_count"] == 2
