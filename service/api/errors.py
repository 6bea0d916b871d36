"""One error shape for every non-2xx answer: `{"error": {"code", "message", "details"}}`.

Litestar's own errors (validation, unknown route, wrong method, body too large) and the
deciders' rejections are mapped onto API.md's codes; anything unexpected is logged with the
request id and answered INTERNAL without detail."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    InternalServerException,
    NotFoundException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap

from events.domain.rejections import CommandRejected
from service.api.messages import json_problem, plain

log = structlog.get_logger(__name__)

CLIENT_GONE: Final = "client disconnected prematurely"  # litestar.connection.Request.stream

CODE_BY_STATUS: Final[dict[int, str]] = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "INVALID_STATE",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED",
    503: "UNAVAILABLE",
}
STATUS_BY_REJECTION: Final[dict[str, int]] = {
    "INVALID_STATE": 409,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
}


def public_code(exc: CommandRejected) -> str:
    """The contract's code for a decider's rejection (the CLI prints the same)."""
    return "CONFLICT" if exc.code == "ALREADY_EXISTS" else exc.code


class ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str
    details: list[dict[str, Any]] = msgspec.field(default_factory=list)


class ErrorResponse(msgspec.Struct, frozen=True):
    """The body of every non-2xx response."""

    error: ErrorBody


class ApiError(Exception):
    """Raised by handlers; answered as the error shape with `status`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = [dict(d) for d in details]
        self.headers = dict(headers or {})


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def invalid(message: str, details: Sequence[Mapping[str, Any]] = ()) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, details)


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[ErrorResponse]:
    body = ErrorResponse(ErrorBody(code=code, message=message, details=details or []))
    return Response(body, status_code=status, headers=dict(headers or {}))


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorResponse]:
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def _rejected(_: Request[Any, Any, Any], exc: CommandRejected) -> Response[ErrorResponse]:
    status = STATUS_BY_REJECTION.get(exc.code, 409)
    code = public_code(exc)
    if code == "NOT_FOUND":
        return error_response(404, "NOT_FOUND", exc.message)
    return error_response(status, code, exc.message)


# Python names of renamed parameters
_PUBLIC_NAMES: Final = {"job_state": "state", "idempotency_key": "Idempotency-Key"}
_AT = re.compile(r"^(?P<problem>.*?) - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")


def field_detail(key: str, message: str) -> dict[str, Any]:
    """One `{"field", "problem"}` entry from a Litestar/msgspec validation message."""
    if key == "data" and message == "'data'":
        return {"field": "body", "problem": "required"}
    field = _PUBLIC_NAMES.get(key, "" if key == "data" else key)
    if match := _AT.match(message):
        message = match["problem"]
        path = match["path"].replace("[", ".").replace("]", "")
        field = ".".join(p for p in (field, path) if p)
    if match := _MISSING.match(message):
        return {"field": ".".join(p for p in (field, match["field"]) if p), "problem": "required"}
    if match := _UNKNOWN.match(message):
        name = ".".join(p for p in (field, match["field"]) if p)
        return {"field": name, "problem": "unknown field (check its spelling)"}
    return {"field": field or "body", "problem": plain(field, message)}


def _validation_details(extra: Any) -> list[dict[str, Any]]:
    """Litestar's validation `extra` as `{"field", "problem"}` entries."""
    out: list[dict[str, Any]] = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, Mapping):
            out.append(
                field_detail(str(item.get("key") or ""), str(item.get("message") or "invalid"))
            )
    return out


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorResponse]:
    details = _validation_details(exc.extra)
    message = exc.detail if isinstance(exc.detail, str) else "invalid request"
    if (words := json_problem(message)) is not None:
        return _not_json(words)
    if details and details[0].get("problem"):
        message = "; ".join(f"{d['field']} {d['problem']}" for d in details)
    return error_response(400, "VALIDATION_ERROR", message, details)


def _not_json(words: str) -> Response[ErrorResponse]:
    detail = {"field": "body", "problem": words}
    return error_response(400, "VALIDATION_ERROR", f"body: {words}", [detail])


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorResponse]:
    status = exc.status_code
    if isinstance(exc, InternalServerException) and exc.detail == CLIENT_GONE:
        # Litestar's word for an `http.disconnect` while the body was read: the client left
        # (a timeout, a killed load generator), nothing of ours failed. Nobody reads this answer.
        log.info("http.client_disconnected")
        return error_response(
            400, "VALIDATION_ERROR", "client disconnected before its body was read"
        )
    if status >= 500 and status != 503:
        log.error("http.internal_error", error=exc.detail)
        return error_response(500, "INTERNAL", "internal error")
    code = CODE_BY_STATUS.get(status, "VALIDATION_ERROR" if status < 500 else "UNAVAILABLE")
    message = exc.detail or "error"
    if status == 400 and (words := json_problem(message)) is not None:
        return _not_json(words)
    if status == 413:
        message = "request body too large"
    elif isinstance(exc, NotFoundException) and not exc.detail:
        message = "not found"
    headers = dict(exc.headers or {})
    return error_response(status, code, message, headers=headers)


def _too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[ErrorResponse]:
    # msgspec gives up on absurdly nested JSON with RecursionError while decoding a body.
    detail = {"field": "body", "problem": "nested too deeply"}
    return error_response(400, "VALIDATION_ERROR", "body is nested too deeply", [detail])


def _not_utf8(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[ErrorResponse]:
    # Litestar hands a JSON body with invalid UTF-8 inside a string to msgspec, which raises
    # UnicodeDecodeError (not a DecodeError): the client's mistake, never a 500.
    detail = {"field": "body", "problem": "not valid UTF-8"}
    return error_response(400, "VALIDATION_ERROR", "body is not valid UTF-8", [detail])


def _database_unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    log.warning("http.database_unavailable", error_type=type(exc).__name__)
    return error_response(503, "UNAVAILABLE", "the database is unavailable; retry shortly")


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    log.exception("http.unexpected_exception", error_type=type(exc).__name__)
    return error_response(500, "INTERNAL", "internal error")


EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    ApiError: _api_error,
    CommandRejected: _rejected,
    ValidationException: _validation,
    HTTPException: _http,
    RecursionError: _too_deep,
    UnicodeDecodeError: _not_utf8,
    OSError: _database_unavailable,
    asyncpg.PostgresConnectionError: _database_unavailable,
    asyncpg.CannotConnectNowError: _database_unavailable,
    asyncpg.TooManyConnectionsError: _database_unavailable,
    asyncpg.ConnectionDoesNotExistError: _database_unavailable,
    Exception: _unexpected,
}

# For the OpenAPI document: the error responses a route can give.
ERROR_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "INVALID_STATE, IDEMPOTENCY_CONFLICT or CONFLICT (already exists)",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED (see Retry-After)",
    503: "UNAVAILABLE",
}
