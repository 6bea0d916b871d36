"""The dashboard under /ui: server-rendered pages (Litestar templates, jinja2) kept live with
htmx's SSE extension over ftq's own streams. Every script, style and chart library is served
from `static/` (see its README); nothing comes from a CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from litestar import Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

HERE: Final = Path(__file__).parent


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


def ui_routers() -> list[Any]:
    from service.ui import job, jobs, login, queue, scheduler, usage  # noqa: PLC0415
    from service.ui.web import SignInRequired, to_login  # noqa: PLC0415

    pages = [*login.ROUTES, *queue.ROUTES, *jobs.ROUTES, *job.ROUTES, *scheduler.ROUTES]
    pages += usage.ROUTES
    return [
        Router(
            "/",
            route_handlers=pages,
            exception_handlers={SignInRequired: to_login},
            include_in_schema=False,
        ),
        create_static_files_router(
            path="/ui/static", directories=[HERE / "static"], include_in_schema=False
        ),
    ]
