"""`service.api.fast_submit` answers the plain `POST /jobs` exactly as the route does, and
hands every other request to the route: each request here is sent to an app with the fast
path and to one without it (same database), and the answers, and what each recorded in the
log, must be the same but for the new job's id, time and place in the queue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.api.fast_submit import FastSubmit
from service.app import create_app
from service.logging import RequestContext
from service.settings import Settings
from tests.api.conftest import DPO_PAYLOAD, RFT_PAYLOAD, Users, bearer, sft

Client = AsyncTestClient[Litestar]
JSON = {"Content-Type": "application/json"}
# What differs between two submissions of the same body: the job, its time, its place (the
# second is behind the first; both places come from service.api.views on either path).
PER_JOB = ("id", "created_at", "queue_position", "pending_reason", "eta")

PLAIN: list[dict[str, Any]] = [
    sft(),
    sft(gpu_count=8, display_name="big run ✓", gpu_type="b200", max_runtime_minutes=90),
    sft(gpu_count=4.0, priority=10),  # an integral float is an integer
    {"kind": "DPO", "fireworks_payload": DPO_PAYLOAD, "gpu_count": 2},
    {"kind": "RFT", "fireworks_payload": RFT_PAYLOAD, "display_name": None},
    sft(fireworks_payload={"dataset": "d", "baseModel": "m", "wandbConfig": {"apiKey": "s3"}}),
]


def _fast(app: Litestar) -> FastSubmit:
    context = app.asgi_handler
    assert isinstance(context, RequestContext) and isinstance(context.app, FastSubmit)
    return context.app


@pytest.fixture
async def route_client(api_settings: Settings) -> AsyncIterator[Client]:
    """The same app without the fast path: every POST /jobs goes through the route."""
    async with AsyncTestClient(
        app=create_app(api_settings, run_scheduler=False, fast_submit=False)
    ) as c:
        yield c


async def _both(
    app: Litestar, fast: Client, route: Client, route_key: str | None = None, **request: Any
) -> tuple[Any, Any, int]:
    """The answers of both apps to one request (to the route with `route_key` instead of the
    request's key, if given), and how many the fast path answered itself."""
    before = _fast(app).answered
    one = await fast.post("/jobs", **request)
    if route_key is not None:
        request = {**request, "headers": {**request["headers"], **bearer(route_key)}}
    other = await route.post("/jobs", **request)
    return one, other, _fast(app).answered - before


def _masked(answer: Any, *also: str) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    if "id" in body:  # a job
        return {k: v for k, v in body.items() if k not in (*PER_JOB, *also)}
    body["error"].pop("request_id", None)  # an error
    return body


def _headers(answer: Any) -> dict[str, str]:
    """The answer's headers, but for the ones that name the request or the job (and the
    length: the bodies are compared as masked)."""
    named = ("x-request-id", "location", "date", "content-length")
    return {k: v for k, v in answer.headers.items() if k not in named}


async def _recorded(pool: asyncpg.Pool, job_id: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    row = await pool.fetchrow(
        "SELECT type, data, metadata FROM events WHERE stream_id = $1", job_id
    )
    assert row is not None, f"no event of job {job_id}"
    data = {
        k: v
        for k, v in json.loads(row["data"]).items()
        if k not in ("job_id", "at", "fireworks_payload")
    }
    metadata = {k: v for k, v in json.loads(row["metadata"]).items() if k != "request_id"}
    return row["type"], data, metadata


@pytest.mark.parametrize("body", PLAIN, ids=range(len(PLAIN)))
async def test_plain_submissions_get_the_routes_answer_from_the_fast_path(
    app: Litestar,
    app_client: Client,
    route_client: Client,
    users: Users,
    pool: asyncpg.Pool,
    body: dict[str, Any],
) -> None:
    fast, route, answered = await _both(
        app, app_client, route_client, json=body, headers=bearer(users.alice)
    )
    assert answered == 1  # the fast path answered this one itself
    assert (fast.status_code, route.status_code) == (201, 201)
    assert _masked(fast) == _masked(route)
    assert _headers(fast) == _headers(route)
    assert fast.headers["location"] == f"/jobs/{fast.json()['id']}"
    assert list(fast.headers) == list(route.headers)  # the same headers, in the same order
    assert await _recorded(pool, fast.json()["id"]) == await _recorded(pool, route.json()["id"])
    # both are on the queue, one behind the other
    assert fast.json()["queue_position"] + 1 == route.json()["queue_position"]


async def test_the_alias_is_served_too(app: Litestar, app_client: Client, users: Users) -> None:
    before = _fast(app).answered
    answer = await app_client.post(
        "/functions/v1/jobs-api/jobs", json=sft(), headers=bearer(users.bob)
    )
    assert answer.status_code == 201 and _fast(app).answered == before + 1
    assert answer.headers["location"] == f"/functions/v1/jobs-api/jobs/{answer.json()['id']}"


# Requests the route must decide: refusals, and submissions that need another read.
HANDED_ON: list[tuple[str, dict[str, Any]]] = [
    ("no key", {"json": sft()}),
    ("unknown key", {"json": sft(), "headers": bearer("sftq_" + "x" * 43)}),
    ("not JSON", {"content": b"{", "headers": JSON}),
    ("empty body", {"content": b"", "headers": JSON}),
    ("unknown field", {"json": sft(colour="red")}),
    ("a string for a number", {"json": sft(gpu_count="4")}),
    ("bad payload", {"json": {"kind": "SFT", "fireworks_payload": {}}}),
    ("NUL in a name", {"json": sft(display_name="a\x00b")}),
    ("another media type", {"content": b"{}", "headers": {"Content-Type": "text/plain"}}),
    ("a query string", {"json": sft(), "params": {"x": "1"}}),
    ("Idempotency-Key", {"json": sft(), "headers": {"Idempotency-Key": "k-1"}}),
    ("after", {"json": sft(after=["01a2426d-39e7-78b6-a006-a67b856de39e"])}),
    ("priority above the default", {"json": sft(priority=90)}),
]


async def test_a_header_given_twice_is_the_routes(
    app: Litestar, app_client: Client, route_client: Client, users: Users
) -> None:
    """Two Authorization headers, a bad one first: the route reads the first (401), and so
    the fast path must not answer from the second."""
    headers = [("Authorization", "Bearer nope"), *bearer(users.alice).items(), *JSON.items()]
    body = json.dumps(sft()).encode()
    before = _fast(app).answered
    fast = await app_client.post("/jobs", content=body, headers=headers)
    route = await route_client.post("/jobs", content=body, headers=headers)
    assert _fast(app).answered == before
    assert fast.status_code == route.status_code == 401


@pytest.mark.parametrize(("what", "request_"), HANDED_ON, ids=[w for w, _ in HANDED_ON])
async def test_every_other_request_is_the_routes(
    app: Litestar,
    app_client: Client,
    route_client: Client,
    users: Users,
    what: str,
    request_: dict[str, Any],
) -> None:
    """Alice asks the fast path's app, Bob the route's (an Idempotency-Key is per user), or
    both send the case's own Authorization (or none)."""
    headers = {**bearer(users.alice), **request_.get("headers", {})}
    bob: str | None = None if "Authorization" in request_.get("headers", {}) else users.bob
    if what == "no key":
        headers, bob = {}, None
    fast, route, answered = await _both(
        app, app_client, route_client, bob, **{**request_, "headers": headers}
    )
    assert answered == 0, what
    assert fast.status_code == route.status_code, what
    assert _masked(fast, "user") == _masked(route, "user"), what
    assert _headers(fast) == _headers(route), what


async def test_a_refused_flood_is_the_routes_429(
    api_settings: Settings, users: Users, pool: asyncpg.Pool
) -> None:
    settings = msgspec.structs.replace(api_settings, max_queued_per_user=1)
    app = create_app(settings, run_scheduler=False)
    async with AsyncTestClient(app=app) as client:
        first = await client.post("/jobs", json=sft(), headers=bearer(users.bob))
        refused = await client.post("/jobs", json=sft(), headers=bearer(users.bob))
    assert first.status_code == 201
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "RATE_LIMITED"
    assert _fast(app).answered == 1


async def test_a_failure_while_recording_is_answered_once_in_the_contracts_shape(
    app: Litestar,
    app_client: Client,
    route_client: Client,
    users: Users,
    pool: asyncpg.Pool,
) -> None:
    """The database goes away between the checks and the append: both paths answer 503
    UNAVAILABLE, and nothing is recorded (the fast path does not hand it on to try again)."""

    async def unavailable(*_: Any, **__: Any) -> Any:
        raise OSError("connection refused")

    for client in (app_client, route_client):
        runtime = client.app.state.runtime
        runtime.submitter.submit = unavailable
    events = await pool.fetchval("SELECT count(*) FROM events")
    fast, route, answered = await _both(
        app, app_client, route_client, json=sft(), headers=bearer(users.alice)
    )
    assert answered == 0  # started recording, but did not answer a 201
    assert (fast.status_code, route.status_code) == (503, 503)
    assert _masked(fast) == _masked(route)
    assert fast.json()["error"]["code"] == "UNAVAILABLE"
    assert await pool.fetchval("SELECT count(*) FROM events") == events
