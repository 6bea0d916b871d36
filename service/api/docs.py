"""The API docs pages (Swagger UI, ReDoc) with their JS/CSS served by ftq itself, from the
`openapi-ui-bundles` package: ftq runs on machines without internet, so no page loads
anything from a CDN. An unknown page under /schema is a 404 in the error shape."""

from __future__ import annotations

from typing import Any, Final

from litestar import Response, Router
from litestar.enums import MediaType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from openapi_ui_bundles import redoc, swagger_ui

from service.api.errors import error_response

SCHEMA_PATH: Final = "/schema"
ASSETS: Final = f"{SCHEMA_PATH}/assets"
_FAVICON: Final = f"<link rel='icon' type='image/png' href='{ASSETS}/swagger/favicon-32x32.png'>"


def _asset_routers() -> list[Router]:
    return [
        create_static_files_router(
            path=f"{ASSETS}/{name}",
            directories=[directory],
            include_in_schema=False,
            send_as_attachment=False,
        )
        for name, directory in (("swagger", swagger_ui.static_path), ("redoc", redoc.static_path))
    ]


async def _json_not_found(response: Response[Any]) -> Response[Any]:
    """Litestar answers an unknown /schema page with an HTML 404: give the error shape."""
    if response.status_code == 404:
        shaped = error_response(
            404,
            "NOT_FOUND",
            "no such docs page; the docs are /schema/swagger, /schema/redoc and "
            "/schema/openapi.json",
        )
        return Response(shaped.content, status_code=404, media_type=MediaType.JSON)
    return response


def openapi_config(
    security_scheme: str, *, version: str = "1", alias: str | None = None
) -> OpenAPIConfig:
    """ftq's OpenAPI document and docs pages, assets served locally."""
    swagger = SwaggerRenderPlugin(
        js_url=f"{ASSETS}/swagger/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger/swagger-ui-standalone-preset.js",
        favicon=_FAVICON,
    )
    redoc_page = RedocRenderPlugin(
        js_url=f"{ASSETS}/redoc/redoc.standalone.js", google_fonts=False, favicon=_FAVICON
    )
    return OpenAPIConfig(
        title="ftq",
        version=version,
        description="A fair, event-sourced queue in front of a Fireworks account's "
        "fine-tuning GPUs. Every non-2xx body is {error: {code, message, details}}."
        + (
            ""
            if alias is None
            else f"\n\n**Compatibility alias:** `{alias}` serves the job routes again "
            f"(`{alias}/jobs`, `{alias}/jobs/{{id}}`, its events and requeue, "
            f"`{alias}/events/stream`): the path clients of the old Supabase service build "
            "from `SUPABASE_URL`. Same behaviour; listed once, here, not route by route."
        ),
        path=SCHEMA_PATH,
        render_plugins=[swagger, redoc_page],
        openapi_router=Router(
            SCHEMA_PATH, route_handlers=[], include_in_schema=False, after_request=_json_not_found
        ),
        components=Components(
            security_schemes={
                security_scheme: SecurityScheme(
                    type="http", scheme="bearer", description="sftq_<token>"
                )
            }
        ),
    )


def docs_routers() -> list[Router]:
    """The routers that serve the docs pages' assets."""
    return _asset_routers()
