"""The scheduler page (admins): leader, policy, paused with its reason, the last tick, and
Pause/Resume forms (CSRF-checked) that record the same commands as POST /admin/scheduler/*."""

from __future__ import annotations

import json
from typing import Any, Final

from litestar import Request, get, post
from litestar.response import Redirect, Template

from service.api import admin
from service.ui.web import checked_form, require_admin, signed_in

MAX_REASON: Final = 500


@get("/ui/scheduler", include_in_schema=False)
async def scheduler_page(request: Request[Any, Any, Any]) -> Template:
    signed = await signed_in(request)
    require_admin(signed)
    view = await admin._scheduler_view(signed.runtime)  # what GET /admin/scheduler shows
    context = signed.context(
        "scheduler",
        view=view,
        policy=signed.runtime.settings.policy,
        reason=view.pause_reason,
        changed_by=view.changed_by,
        changed_at=view.changed_at,
        tick=json.dumps(view.last_tick, indent=2, sort_keys=True, default=str)
        if view.last_tick
        else None,
    )
    return Template("scheduler.html", context=context)


@post("/ui/scheduler/pause", include_in_schema=False, status_code=303)
async def pause(request: Request[Any, Any, Any]) -> Redirect:
    signed, form = await checked_form(request)
    require_admin(signed)
    reason = form.get("reason", "").strip() or None
    if reason is not None and (len(reason) > MAX_REASON or "\x00" in reason):
        from service.api.errors import ApiError  # noqa: PLC0415

        raise ApiError(400, "VALIDATION_ERROR", f"reason must be at most {MAX_REASON} characters")
    await admin.pause_scheduler(signed.runtime, signed.caller, reason)
    return Redirect("/ui/scheduler", status_code=303)


@post("/ui/scheduler/resume", include_in_schema=False, status_code=303)
async def resume(request: Request[Any, Any, Any]) -> Redirect:
    signed, _ = await checked_form(request)
    require_admin(signed)
    await admin.resume_scheduler(signed.runtime, signed.caller)
    return Redirect("/ui/scheduler", status_code=303)


ROUTES: Final = [scheduler_page, pause, resume]
