"""Limits against floods of submits (agents and scripts submit fast): at most
FTQ_MAX_QUEUED_PER_USER QUEUED jobs per user, and FTQ_SUBMIT_RATE_PER_MINUTE new jobs per
user and minute, a token bucket in the database that every replica shares (one minute's worth
of burst). Beyond either: 429 RATE_LIMITED with Retry-After, and nothing recorded. Admins are
exempt; a batch counts each job it would create (idempotent repeats create nothing)."""

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
    """429 unless `caller` may add `new_jobs` jobs now; takes them from the rate bucket."""
    if caller.is_admin or new_jobs <= 0:
        return
    settings = runtime.settings
    if (most := settings.max_queued_per_user) > 0:
        queued = int(await runtime.pool.fetchval(INTAKE["queued_of_user"], caller.user_id))
        if queued + new_jobs > most:
            raise _limited(
                f"you have {queued} QUEUED jobs and at most {most} may wait "
                f"(FTQ_MAX_QUEUED_PER_USER); {new_jobs} more would be too many",
                QUEUE_RETRY_S,
                {"limit": "max_queued_per_user", "queued": queued, "max": most},
            )
    if (rate := settings.submit_rate_per_minute) > 0:
        await _take(runtime, caller, new_jobs, rate)


async def _take(runtime: Runtime, caller: Caller, wanted: int, rate: int) -> None:
    capacity, per_s = float(rate), rate / 60.0
    async with runtime.pool.acquire() as conn:
        taken = await conn.fetchval(
            INTAKE["take_submit_tokens"], caller.user_id, capacity, float(wanted), per_s
        )
        if taken is not None:
            return
        there = await conn.fetchval(INTAKE["submit_tokens"], caller.user_id, capacity, per_s)
    need = min(float(wanted), capacity) - float(there or 0.0)
    raise _limited(
        f"at most {rate} jobs a minute may be submitted (FTQ_SUBMIT_RATE_PER_MINUTE); "
        f"{wanted} asked",
        math.ceil(need / per_s),
        {"limit": "submit_rate_per_minute", "per_minute": rate, "asked": wanted},
    )
