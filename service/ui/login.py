"""Sign-in and sign-out: `POST /ui/login` with one field `key`; a session cookie on success."""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from service.api.runtime import runtime_of
from service.ui import sessions
from service.ui.web import LOGIN_PATH, checked_form, form_of

BAD_KEY: Final = "That key is not valid, or it has been revoked. Paste an active sftq_ key."


def _secure(request: Request[Any, Any, Any]) -> bool:
    forwarded = (request.headers.get("x-forwarded-proto") or "").lower()
    return request.url.scheme == "https" or forwarded == "https"


@get("/ui", include_in_schema=False, status_code=303)
async def home() -> Redirect:
    return Redirect("/ui/queue", status_code=303)


@get(LOGIN_PATH, include_in_schema=False)
async def login_form() -> Template:
    return Template("login.html", context={"page": "login", "message": None})


@post(LOGIN_PATH, include_in_schema=False, status_code=303)
async def login(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await form_of(request)
    token = await sessions.sign_in(runtime_of(request.app.state).pool, form.get("key", "").strip())
    if token is None:
        page = Template("login.html", context={"page": "login", "message": BAD_KEY})
        page.status_code = 401
        return page
    cookie = Cookie(
        key=sessions.COOKIE,
        value=token,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=int(sessions.LIFETIME.total_seconds()),
    )
    return Redirect("/ui/queue", status_code=303, cookies=[cookie])


@post("/ui/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    await checked_form(request)
    await sessions.sign_out(
        runtime_of(request.app.state).pool, request.cookies.get(sessions.COOKIE)
    )
    out = Redirect(LOGIN_PATH, status_code=303)
    out.delete_cookie(sessions.COOKIE, path="/")
    return out


ROUTES: Final = [home, login_form, login, logout]
