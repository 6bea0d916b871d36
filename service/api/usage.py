"""GPU-hour accounting: `GET /usage` (grouped) and `GET /usage/hourly` (GPUs in use over time).
Members see their own jobs' usage, admins everyone's."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Final

from litestar import get
from litestar.params import QueryParameter

from events.domain.usage import Group, HourBucket, UsageRow
from service.api.auth import CallerDep
from service.api.common import RuntimeDep, errors
from service.api.errors import invalid
from service.api.instants import INSTANT, MAX_INSTANT, parse_instant
from service.usage import EPOCH, usage, usage_by_hour

MAX_HOURS: Final = 24 * 366
WINDOW: Final = "`to` must not precede `from`"
Instant = Annotated[
    str | None,
    QueryParameter(
        description="RFC 3339 time or YYYY-MM-DD (UTC when no offset is given); " + WINDOW,
        max_length=MAX_INSTANT,
        pattern=INSTANT,
    ),
]
From = Annotated[
    str | None,
    QueryParameter(
        name="from",
        description="RFC 3339 time or YYYY-MM-DD (UTC when no offset is given)",
        max_length=MAX_INSTANT,
        pattern=INSTANT,
    ),
]


def _instant(value: str | None, name: str, default: datetime) -> datetime:
    if value is None:
        return default
    parsed = parse_instant(value)
    if parsed is None:
        raise invalid(
            f"{name} is not a time", [{"field": name, "problem": "expected RFC 3339 or YYYY-MM-DD"}]
        )
    return parsed


def _window(
    from_: str | None, to: str | None, default_start: datetime, now: datetime
) -> tuple[datetime, datetime]:
    start, stop = _instant(from_, "from", default_start), _instant(to, "to", now)
    if stop < start:
        raise invalid("to is before from", [{"field": "to", "problem": "must not precede from"}])
    return start, stop


@get("/usage", summary="GPU-hour accounting, grouped by user, kind or day", responses=errors(400))
async def get_usage(
    caller: CallerDep,
    runtime: RuntimeDep,
    from_: From = None,
    to: Instant = None,
    group: Annotated[Group, QueryParameter(description="user, kind or day")] = "user",
) -> list[UsageRow]:
    now = runtime.clock()
    start, stop = _window(from_, to, EPOCH, now)
    return await usage(
        runtime.pool,
        start=start,
        stop=stop,
        now=now,
        group=group,
        user_id=None if caller.is_admin else caller.user_id,
    )


@get(
    "/usage/hourly",
    summary="GPU time per hour (GPUs in use over time)",
    description=f"At most {MAX_HOURS} hours per request; {WINDOW}.",
    responses=errors(400),
)
async def get_usage_hourly(
    caller: CallerDep,
    runtime: RuntimeDep,
    from_: From = None,
    to: Instant = None,
) -> list[HourBucket]:
    now = runtime.clock()
    start, stop = _window(from_, to, now - timedelta(hours=24), now)
    if stop - start > timedelta(hours=MAX_HOURS):
        raise invalid(
            f"at most {MAX_HOURS} hours per request",
            [{"field": "to", "problem": f"window longer than {MAX_HOURS} hours"}],
        )
    return await usage_by_hour(
        runtime.pool,
        start=start,
        stop=stop,
        now=now,
        user_id=None if caller.is_admin else caller.user_id,
    )


USAGE_ROUTES: Final = [get_usage, get_usage_hourly]
