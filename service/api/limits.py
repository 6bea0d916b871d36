"""Limits against floods of submits (agents and scripts submit fast): at most
FTQ_MAX_QUEUED_PER_USER QUEUED jobs per user, and FTQ_SUBMIT_RATE_PER_MINUTE new jobs per
user in any minute, counted from the jobs projection (so every replica shares the figures)
in one read with no write on the submit path. Beyond either: 429 RATE_LIMITED with
Retry-After, and nothing recorded. Admins are exempt; a batch counts each job it would create
(idempotent repeats create nothing); a batch larger than a minute's worth passes only when
the user has submitted nothing in the last minute. Concurrent submits of one user can each
pass the check before the others commit, so a limit can be overshot by the requests in
flight at that moment."""

from __future__ import annotations

import math
from typing import Final

from service.api.auth import Caller
from service.api.errors import ApiError
from service.api.runtime import Runtime
from service.sql import INTAKE

QUEUE_RETRY_S: Final = 60  # when queued jobs leave the queue is not known: a minute


def _limited(message: str, retry_after_s: int, details: dict[str, object]) -> ApiError:
    return ApiError(
        429,
        "RATE_LIMITED",
        message,
        [details],
        headers={"Retry-After": str(max(1, retry_after_s))},
    )


async def check_flood_limits(runtime: Runtime, caller: Caller, new_jobs: int) -> None:
    """429 unless `caller` may add `new_jobs` jobs now."""
    settings = runtime.settings
    most, rate = settings.max_queued_per_user, settings.submit_rate_per_minute
    if caller.is_admin or new_jobs <= 0 or (most <= 0 and rate <= 0):
        return
    row = await runtime.pool.fetchrow(INTAKE["flood_counts"], caller.user_id)
    assert row is not None  # an aggregate: always one row
    queued, recent, oldest, now = row
    if most > 0 and queued + new_jobs > most:
        raise _limited(
            f"you have {queued} QUEUED jobs and at most {most} may wait "
            f"(FTQ_MAX_QUEUED_PER_USER); {new_jobs} more would be too many",
            QUEUE_RETRY_S,
            {"limit": "max_queued_per_user", "queued": queued, "max": most},
        )
    if rate > 0 and recent + new_jobs > rate and (recent > 0 or new_jobs <= rate):
        # the oldest of the last minute's submits leaves the window first
        wait = 60.0 - (now - oldest).total_seconds() if oldest is not None else 60.0
        raise _limited(
            f"at most {rate} jobs a minute may be submitted (FTQ_SUBMIT_RATE_PER_MINUTE); "
            f"{recent} in the last minute, {new_jobs} asked",
            math.ceil(max(1.0, wait)),
            {"limit": "submit_rate_per_minute", "per_minute": rate, "asked": new_jobs},
        )
