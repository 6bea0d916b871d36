"""`POST /jobs` in its plain case, answered in front of Litestar's per-request machinery.

Most submissions are the same request: a known key, a JSON body that is valid, no
Idempotency-Key, no `after`, no priority above the default. For those, Litestar's routing,
dependency injection, DTO and response layers cost about as much CPU as ftq's own work: a
POST took 486-549 µs of the server's CPU through the route and 261-354 µs here
(`python -m bench.http_api`, the side-by-side rounds, 2026-12-04). This ASGI wrapper answers
them itself with the very functions the route uses (`service.api.jobs.record_submission`),
and hands every other request to Litestar unchanged: any request it is not sure of, and
every refusal, is the route's to answer, so each error keeps one author and the contract
one shape. It never hands a request on after it has started to record it: an error from
then on is answered by the app's own exception handlers.

It sits inside `service.logging.RequestContext`, so request ids, the access log and the
request metrics are the same on both paths (`tests/api/test_fast_submit.py` compares the
two)."""

from __future__ import annotations

from typing import Any, Final

from litestar import Litestar, Request
from litestar.enums import ScopeType
from litestar.serialization import encode_json
from litestar.types import (
    ASGIApp,
    HTTPRequestEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from events.domain.job_commands import SubmitJob
from events.domain.scheduling import DEFAULT_PRIORITY
from service.api.auth import Caller, bearer_token
from service.api.common import decode_strict
from service.api.errors import EXCEPTION_HANDLERS, ApiError
from service.api.intake import check_payload, submit_command
from service.api.jobs import record_submission
from service.api.limits import check_flood_limits
from service.api.runtime import Runtime
from service.api.schemas import JobSubmission

_JSON: Final = b"application/json"
_READ: Final = frozenset({b"authorization", b"content-type", b"content-length"})
_NOT_PLAIN: Final = frozenset({b"idempotency-key", b"transfer-encoding"})


class FastSubmit:
    """ASGI: the plain `POST /jobs` (module docstring) at `paths`; all else to `app`."""

    def __init__(self, litestar: Litestar, app: ASGIApp, paths: frozenset[str], max_body: int):
        self._litestar, self._app, self._paths, self._max_body = litestar, app, paths, max_body
        self.answered = 0  # submissions answered here with their 201 (the tests count them)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope["method"] != "POST"
            or scope["path"] not in self._paths
        ):
            await self._app(scope, receive, send)
            return
        runtime = self._litestar.state.get("runtime")
        token = _plain_request(scope, self._max_body)
        if token is None or not isinstance(runtime, Runtime):
            await self._app(scope, receive, send)
            return
        body, complete = await _body(receive, self._max_body)
        if body is None:
            return  # the client left before its body came: nobody to answer
        replay = _replaying(body, complete, receive)
        if not complete:  # longer than its Content-Length said: the route's answer
            await self._app(scope, replay, send)
            return
        try:
            plain = await _plain_submission(runtime, token, body)
        except Exception:  # nothing recorded yet: the route decides and answers
            plain = None
        if plain is None:
            await self._app(scope, replay, send)
            return
        scope["path_template"] = scope["path"]  # the route's own template: metrics and logs
        try:
            view, location = await record_submission(runtime, *plain, scope["path"])
        except Exception as exc:  # recording began: answered here, never twice
            await self._error(exc, scope, replay, send)
            return
        content = encode_json(view)
        headers = [
            (b"location", location.encode()),
            (b"content-type", _JSON),
            (b"content-length", str(len(content)).encode()),
        ]
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 201,
            "headers": headers,
        }
        await send(start)
        body_event: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": content,
            "more_body": False,
        }
        await send(body_event)
        self.answered += 1

    async def _error(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """`exc` answered as the route would have: by the app's handler for its type."""
        request: Request[Any, Any, Any] = Request(scope, receive)
        handler = next(EXCEPTION_HANDLERS[t] for t in type(exc).__mro__ if t in EXCEPTION_HANDLERS)
        response = handler(request, exc)
        await response.to_asgi_response(None, request)(scope, receive, send)


def _plain_request(scope: Scope, max_body: int) -> str | None:
    """The bearer token of a request whose headers are the plain case's, else None (a
    header that decides the answer given twice is the route's to read)."""
    seen: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _READ:
            if name in seen:
                return None
            seen[name] = value
        elif name in _NOT_PLAIN:
            return None
    length = seen.get(b"content-length", b"")
    if scope.get("query_string") or seen.get(b"content-type") != _JSON:
        return None
    if not length.isdigit() or int(length) > max_body:
        return None
    return bearer_token(seen.get(b"authorization", b"").decode("latin-1"))


async def _plain_submission(
    runtime: Runtime, token: str, body: bytes
) -> tuple[Caller, SubmitJob] | None:
    """The caller and the command the route would record without another read or a
    refusal; None when the route must decide."""
    user = await runtime.keys.authenticate(token)
    if user is None:
        return None
    caller = Caller(user_id=user.id, email=user.email, role=user.role)
    try:
        data = check_payload(decode_strict(body, JobSubmission))
        if data.after or (data.priority or 0) > DEFAULT_PRIORITY:
            return None  # a read the route makes, and its refusals
        await check_flood_limits(runtime, caller, 1)
    except ApiError:
        return None
    gpu_type = runtime.settings.default_gpu_type
    return caller, submit_command(data, caller, runtime.clock(), None, gpu_type)


async def _body(receive: Receive, max_body: int) -> tuple[bytes | None, bool]:
    """The request's body (None: the client disconnected) and whether it is whole (False:
    it went past `max_body`; what was read is replayed to the route, then the rest)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
        if not more or size > max_body:
            return b"".join(chunks), not more


def _replaying(body: bytes, whole: bool, receive: Receive) -> Receive:
    """A `receive` that gives `body` first, then whatever `receive` gives."""
    sent = False

    async def replay() -> ReceiveMessage:
        nonlocal sent
        if not sent:
            sent = True
            first: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": not whole}
            return first
        return await receive()

    return replay
