"""The usage page: four Chart.js charts (GPUs in use against the quota, queue depth, the wait
distribution, GPU-hours per user), each with its own day/week/month selector that fetches
`/ui/usage/data`. Members see their own GPU-hours and waits only."""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, get
from litestar.response import Template

from service.api.errors import ApiError
from service.ui import usage_data
from service.ui.web import Signed, signed_in


def _quota(signed: Signed) -> int:
    return signed.runtime.settings.fireworks_gpu_quota or 0


@get("/ui/usage", include_in_schema=False)
async def usage_page(request: Request[Any, Any, Any]) -> Template:
    signed = await signed_in(request)
    return Template("usage.html", context=signed.context("usage", ranges=list(usage_data.RANGES)))


@get("/ui/usage/data", include_in_schema=False)
async def usage_chart(request: Request[Any, Any, Any]) -> dict[str, Any]:
    signed = await signed_in(request)
    name = request.query_params.get("chart", "")
    range_ = request.query_params.get("range", "day")
    if name not in usage_data.CHARTS:
        raise ApiError(
            400, "VALIDATION_ERROR", f"chart must be one of {', '.join(usage_data.CHARTS)}"
        )
    if range_ not in usage_data.RANGES:
        raise ApiError(400, "VALIDATION_ERROR", "range must be one of day, week, month")
    user = None if signed.caller.is_admin else signed.caller.user_id
    return await usage_data.chart(signed.runtime.pool, name, range_, user, _quota(signed))


ROUTES: Final = [usage_page, usage_chart]
