"""A complete `Allow` header on OPTIONS. Litestar makes a path's OPTIONS answer when the
first of its handlers is registered, so a path served by handlers of several routers (GET
and DELETE /jobs/{id}, say) listed only some of its methods; this rewrites the header from
the app's routes as they finally are."""

from __future__ import annotations

from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

_CACHE_KEY = "ftq_allowed_methods"


def _allowed(scope: Scope) -> dict[str, str]:
    app: Any = scope["app"]
    allowed: dict[str, str] | None = app.state.get(_CACHE_KEY)
    if allowed is None:
        allowed = {
            route.path_format: ", ".join(sorted(route.methods))
            for route in app.routes
            if isinstance(route, HTTPRoute)
        }
        app.state[_CACHE_KEY] = allowed
    return allowed


async def complete_allow(message: Message, scope: Scope) -> None:
    """`before_send` hook: on an OPTIONS answer, Allow names every method of the path."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    methods = _allowed(scope).get(str(scope.get("path_template")))
    headers = MutableScopeHeaders.from_message(message)
    if methods is not None and "allow" in headers:
        headers["Allow"] = methods
