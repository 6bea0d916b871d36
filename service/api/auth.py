"""Bearer `sftq_` keys. A `before_request` hook (or, on admin routes, the `admin_only` guard)
authenticates before anything else (so a bad body from an unknown caller is 401, not 400)
and leaves the `Caller` for the `caller` dependency."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler

from events.domain.directory_events import Role
from service.api.errors import ApiError
from service.api.runtime import runtime_of
from service.ui import sessions

_STATE_KEY: Final = "ftq_caller"
_COOKIE_METHODS: Final = frozenset({"GET", "HEAD"})
BEARER_SCHEME: Final = "BearerKey"


class Caller(msgspec.Struct, frozen=True):
    user_id: str
    email: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_see(self, owner_id: str) -> bool:
        """Whether a job of `owner_id` is visible to this caller (its owner, or an admin);
        the routes answer 404 otherwise, never 403, so existence is not leaked."""
        return owner_id == self.user_id or self.is_admin


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "UNAUTHENTICATED", message, headers={"WWW-Authenticate": "Bearer"})


async def _session_caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller | None:
    """The dashboard's session cookie, accepted on live streams only (a browser's
    EventSource sends cookies, never headers), for GET/HEAD only, and only without an
    Authorization header."""
    if connection.scope.get("method") not in _COOKIE_METHODS:
        return None
    if not connection.scope.get("path", "").endswith("/stream"):
        return None
    token = connection.cookies.get(sessions.COOKIE)
    if not token:
        return None
    session = await sessions.lookup(runtime_of(connection.app.state).pool, token)
    if session is None:
        return None
    role: Role = "admin" if session.role == "admin" else "member"
    return Caller(user_id=session.user_id, email=session.email, role=role)


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None: another form)."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate_connection(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The caller of this connection (cached on the connection's scope state)."""
    cached = connection.scope.get("state", {}).get(_STATE_KEY)
    if isinstance(cached, Caller):
        return cached
    header = connection.headers.get("authorization")
    if not header and (caller := await _session_caller(connection)) is not None:
        connection.scope.setdefault("state", {})[_STATE_KEY] = caller
        return caller
    if not header:
        raise _unauthenticated("missing Authorization header")
    token = bearer_token(header)
    if token is None:
        raise _unauthenticated("Authorization must be 'Bearer sftq_<token>'")
    user = await runtime_of(connection.app.state).keys.authenticate(token)
    if user is None:
        raise _unauthenticated("unknown or revoked API key")
    caller = Caller(user_id=user.id, email=user.email, role=user.role)
    connection.scope.setdefault("state", {})[_STATE_KEY] = caller
    return caller


async def authenticate_request(request: Request[Any, Any, Any]) -> None:
    """`before_request` hook: 401 unless the request carries a valid, active key. It runs
    before the body or any parameter is read. (Not a guard: Litestar calls a guard with a copy
    of the route handler, about 5% of the CPU of a `POST /jobs`; py-spy over
    `bench/http_api.py`.)"""
    await authenticate_connection(request)


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: 403 for members (after authentication)."""
    caller = await authenticate_connection(connection)
    if not caller.is_admin:
        raise ApiError(403, "FORBIDDEN", "admin role required")


def provide_caller(request: Request[Any, Any, Any], runtime: Any) -> Caller:
    """The caller `authenticate_request` (or `admin_only`) found: every route with this
    dependency has one of them. It takes `runtime` only to be resolved after it:
    Litestar resolves independent dependencies concurrently, in an anyio task group per
    request, which cost POST /jobs about 8% of its CPU (a py-spy profile of
    `bench/http_api.py`) for two dependencies that do no I/O. Synchronous, so it runs
    inline."""
    cached = request.scope.get("state", {}).get(_STATE_KEY)
    if not isinstance(cached, Caller):
        raise _unauthenticated("authentication required")  # a route without either
    return cached


CALLER: Final = {"caller": Provide(provide_caller, sync_to_thread=False)}
# Annotation for handlers: `caller: CallerDep` (a plain `caller: Caller` works too).
CallerDep = NamedDependency[Caller]
SECURITY: Final[list[dict[str, list[str]]]] = [{BEARER_SCHEME: []}]
