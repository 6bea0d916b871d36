"""Structured logs (JSON or console) and the per-request context: a request id bound for
every log line of the request and echoed in `X-Request-ID`, one access line per request,
and the HTTP metrics. Bodies and the Authorization header are never logged; a last
processor redacts whatever secrets a log call might still carry."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Final

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import UNMATCHED_ROUTE, observe_request
from service.redaction import redact
from service.settings import Settings

REQUEST_ID_HEADER: Final = b"x-request-id"
_SANE_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = structlog.get_logger("ftq.access")


def redact_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: secrets in any field become "***"."""
    cleaned = redact(dict(event_dict))
    assert isinstance(cleaned, dict)
    return cleaned


def _stdout_logger(*_args: Any) -> structlog.WriteLogger:
    return structlog.WriteLogger(sys.stdout)


def log_level(settings: Settings) -> int:
    return logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)


def configure_logging(settings: Settings) -> None:
    level = log_level(settings)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # sys.stdout as it is when a line is written, not when logging was configured (a
        # stream swapped since, e.g. by a test's output capture, may have been closed)
        logger_factory=_stdout_logger,
        cache_logger_on_first_use=False,
    )


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1").strip()
            if _SANE_ID.match(candidate):
                return candidate
            break
    return os.urandom(16).hex()


class RequestContext:
    """Outermost ASGI wrapper (outside routing, so 404/405 are covered too). `access_log`:
    whether `http.request` lines are logged at all (False when the level is above INFO: even
    a line the level filters out binds a logger first, about 1% of a POST /jobs' CPU)."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self._access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        # bind/reset rather than `bound_contextvars`: the context manager cost 3x as much
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            structlog.contextvars.reset_contextvars(**tokens)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        """The request's metrics and (with `access_log`) its `http.request` line."""
        route = str(scope.get("path_template") or UNMATCHED_ROUTE)
        method = str(scope.get("method", ""))
        observe_request(route, method, status, seconds)
        if self._access_log:
            params = scope.get("path_params") or {}
            job = {"job_id": params["id"]} if "id" in params and "/jobs/" in route else {}
            log.info(
                "http.request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 2),
                **job,
            )
