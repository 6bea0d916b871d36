"""What every dashboard page shares: the signed-in caller (or a redirect to the sign-in
form), the CSRF check of forms, and the page context."""

from __future__ import annotations

import hmac
from typing import Any, Final

from litestar import Request, Response
from litestar.response import Redirect

from events.domain.directory_events import Role
from service.api.auth import Caller
from service.api.errors import ApiError
from service.api.runtime import Runtime, runtime_of
from service.ui import sessions

LOGIN_PATH: Final = "/ui/login"


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in form."""


class Signed:
    """The caller of a page request and their session."""

    def __init__(self, caller: Caller, session: sessions.Session, runtime: Runtime) -> None:
        self.caller, self.session, self.runtime = caller, session, runtime

    def context(self, page: str, **extra: Any) -> dict[str, Any]:
        return {"page": page, "caller": self.caller, "csrf": self.session.csrf, **extra}


async def signed_in(request: Request[Any, Any, Any]) -> Signed:
    runtime = runtime_of(request.app.state)
    session = await sessions.lookup(runtime.pool, request.cookies.get(sessions.COOKIE))
    if session is None:
        raise SignInRequired
    role: Role = "admin" if session.role == "admin" else "member"
    caller = Caller(user_id=session.user_id, email=session.email, role=role)
    return Signed(caller, session, runtime)


async def form_of(request: Request[Any, Any, Any]) -> dict[str, str]:
    try:
        raw = await request.form()
    except Exception:  # an unreadable body is a bad form, never a 500
        raise ApiError(400, "VALIDATION_ERROR", "the form could not be read") from None
    return {k: v for k, v in raw.items() if isinstance(v, str)}


async def checked_form(request: Request[Any, Any, Any]) -> tuple[Signed, dict[str, str]]:
    """The signed-in caller and the form, after its CSRF token matched the session's (403
    in the error shape otherwise, before anything is changed)."""
    signed = await signed_in(request)
    form = await form_of(request)
    token = form.get("csrf", "")
    if not hmac.compare_digest(token.encode(), signed.session.csrf.encode()):
        raise ApiError(403, "FORBIDDEN", "missing or invalid CSRF token")
    return signed, form


def to_login(_: Request[Any, Any, Any], __: Exception) -> Response[Any]:
    return Redirect(LOGIN_PATH, status_code=303)


def require_admin(signed: Signed) -> None:
    if not signed.caller.is_admin:
        raise ApiError(404, "NOT_FOUND", "no such page")
