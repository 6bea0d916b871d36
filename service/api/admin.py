"""Admin routes: users, keys, per-user caps, and the scheduler switch (recorded in the log)."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, delete, get, post, put
from litestar.params import FromPath, JSONBody

from events.domain.directory import SCHEDULER, PauseScheduler, ResumeScheduler
from events.domain.directory_events import SCHEDULER_STREAM
from service import directory
from service.api.auth import Caller, CallerDep
from service.api.common import (
    RuntimeDep,
    checked_uuid,
    errors,
    metadata,
    optional_body,
    strict_body,
)
from service.api.errors import not_found
from service.api.runtime import Runtime
from service.api.schemas import (
    CapUpdate,
    IssuedKeyView,
    MaxPriorityUpdate,
    NewKey,
    NewUser,
    PauseRequest,
    SchedulerView,
    ShareUpdate,
    UsageTotals,
    UserView,
)
from service.commands import run_command
from service.settings import policy_record
from service.sql import QUERIES
from service.usage import EPOCH, usage


class RevokedKey(msgspec.Struct, frozen=True):
    id: str
    revoked: bool


def _user_view(user: directory.User) -> UserView:
    return UserView(
        id=user.id,
        email=user.email,
        role=user.role,
        cap=user.cap,
        cap_big=user.cap_big,
        no_cap=list(user.no_cap),
        share=user.share,
        max_priority=user.max_priority,
    )


async def _user(runtime: Runtime, user_id: str) -> directory.User:
    user = await directory.find_user(runtime.pool, user_id=checked_uuid(user_id, "user"))
    if user is None:
        raise not_found("no such user")
    return user


async def _user_by_id_or_email(runtime: Runtime, id_or_email: str) -> directory.User:
    if "@" not in id_or_email:
        return await _user(runtime, id_or_email)
    user = await directory.find_user(runtime.pool, email=id_or_email)
    if user is None:
        raise not_found("no such user")
    return user


@post("/users", status_code=201, summary="Add a user", responses=errors(400, 403, 409, 413))
async def add_user(
    request: Request[Any, Any, Any], data: JSONBody[NewUser], caller: CallerDep, runtime: RuntimeDep
) -> UserView:
    data = await strict_body(request, NewUser)
    user = await directory.add_user(runtime.pool, data.email, data.role, metadata(caller))
    return _user_view(user)


@get("/users", summary="List users, each with their GPU-hour usage", responses=errors(403))
async def list_users(runtime: RuntimeDep) -> list[UserView]:
    now = runtime.clock()
    rows = await usage(runtime.pool, start=EPOCH, stop=now, now=now, group="user")
    by_email = {row.group: row for row in rows}
    views = []
    for user in await directory.list_users(runtime.pool):
        row = by_email.get(user.email)
        totals = (
            UsageTotals()
            if row is None
            else UsageTotals(
                jobs=row.jobs,
                gpu_seconds=row.gpu_seconds,
                accelerator_seconds=row.accelerator_seconds,
                estimated_cost=row.estimated_cost,
            )
        )
        views.append(msgspec.structs.replace(_user_view(user), usage=totals))
    return views


@post(
    "/users/{user_id:str}/keys",
    status_code=201,
    summary="Issue an API key (the plaintext is shown only here)",
    responses=errors(400, 403, 404, 413),
)
async def issue_key(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    caller: CallerDep,
    runtime: RuntimeDep,
    data: JSONBody[NewKey | None] = None,
) -> IssuedKeyView:
    user = await _user(runtime, user_id)
    data = await optional_body(request, NewKey)
    label = data.label if data is not None else None
    issued = await directory.issue_key(runtime.pool, user.email, label, metadata(caller))
    return IssuedKeyView(id=issued.id, key=issued.key)


@put(
    "/users/{user_id:str}/cap",
    summary='Set a user\'s PROGRESS cap of a size class (null: the default; "none": no cap)',
    description="`user_id` is the user's id or email (as `ftq users cap` takes).",
    responses=errors(400, 403, 404, 413),
)
async def set_cap(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    data: JSONBody[CapUpdate],
    caller: CallerDep,
    runtime: RuntimeDep,
) -> UserView:
    data = await strict_body(request, CapUpdate)
    user = await _user_by_id_or_email(runtime, user_id)
    unlimited = data.cap == "none"
    cap = None if data.cap == "none" else data.cap
    await directory.set_cap(
        runtime.pool,
        user.email,
        cap,
        metadata(caller),
        size_class=data.size_class,
        unlimited=unlimited,
    )
    _wake(runtime)
    return _user_view(await _user(runtime, user.id))


@put(
    "/users/{user_id:str}/share",
    summary="Set a user's fair-share weight (null: the default, 1)",
    responses=errors(400, 403, 404, 413),
)
async def set_share(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    data: JSONBody[ShareUpdate],
    caller: CallerDep,
    runtime: RuntimeDep,
) -> UserView:
    data = await strict_body(request, ShareUpdate)
    user = await _user(runtime, user_id)
    await directory.set_share(runtime.pool, user.email, data.share, metadata(caller))
    _wake(runtime)
    return _user_view(await _user(runtime, user.id))


@put(
    "/users/{user_id:str}/max-priority",
    summary="Set the highest priority a user may submit with (null: the default, 50)",
    responses=errors(400, 403, 404, 413),
)
async def set_max_priority(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    data: JSONBody[MaxPriorityUpdate],
    caller: CallerDep,
    runtime: RuntimeDep,
) -> UserView:
    data = await strict_body(request, MaxPriorityUpdate)
    user = await _user(runtime, user_id)
    await directory.set_max_priority(runtime.pool, user.email, data.max_priority, metadata(caller))
    return _user_view(await _user(runtime, user.id))


@delete(
    "/keys/{key_id:str}",
    status_code=200,
    summary="Revoke an API key at once",
    responses=errors(403, 404),
)
async def revoke_key(key_id: FromPath[str], caller: CallerDep, runtime: RuntimeDep) -> RevokedKey:
    checked = checked_uuid(key_id, "key")
    await directory.revoke_key(runtime.pool, checked, metadata(caller))
    # Refused here from now on; in other processes as the revocation's NOTIFY reaches them,
    # which it has reached this one's LISTEN connection too before we answer.
    runtime.keys.forget()
    await runtime.keys.synced()
    return RevokedKey(id=checked, revoked=True)


def _wake(runtime: Runtime) -> None:
    if runtime.loop is not None:
        runtime.loop.wake()


async def pause_scheduler(runtime: Runtime, caller: Caller, reason: str | None) -> None:
    """Record the pause (the API and the dashboard both come here) and wake the loop."""
    command = PauseScheduler(at=runtime.clock(), by=caller.email, reason=reason)
    await run_command(
        runtime.pool, SCHEDULER, SCHEDULER_STREAM, command, metadata(caller), waker=runtime.waker
    )
    _wake(runtime)


async def resume_scheduler(runtime: Runtime, caller: Caller) -> None:
    command = ResumeScheduler(at=runtime.clock(), by=caller.email)
    await run_command(
        runtime.pool, SCHEDULER, SCHEDULER_STREAM, command, metadata(caller), waker=runtime.waker
    )
    _wake(runtime)


async def _scheduler_view(runtime: Runtime) -> SchedulerView:
    async with runtime.pool.acquire() as conn:
        switch = await conn.fetchrow(QUERIES["scheduler_switch"])
        recorded = await conn.fetchrow(QUERIES["policy_in_force"])
    paused, reason, changed_by, changed_at = switch if switch else (False, None, None, None)
    leader, last_tick, headroom = False, None, None
    if runtime.loop is not None:
        status = runtime.loop.status()
        leader = bool(status.leader)
        raw: Any = msgspec.to_builtins(status.last_tick) if status.last_tick else None
        last_tick = raw if isinstance(raw, dict) else None
        headroom = status.headroom
    settings = runtime.settings
    return SchedulerView(
        leader=leader,
        paused=bool(paused),
        running_here=runtime.loop is not None,
        last_tick=last_tick,
        pause_reason=reason if paused else None,
        changed_by=changed_by,
        changed_at=changed_at,
        policy=settings.policy,
        policy_settings=policy_record(settings),
        recorded_policy=recorded[0] if recorded else None,
        recorded_policy_settings=(
            msgspec.json.decode(recorded[1]) if recorded and recorded[1] else None
        ),
        headroom=headroom,
    )


@get("/scheduler", summary="Scheduler: leader, paused, last tick", responses=errors(403))
async def scheduler(runtime: RuntimeDep) -> SchedulerView:
    return await _scheduler_view(runtime)


@post(
    "/scheduler/pause",
    status_code=200,
    summary="Stop admissions (reconciliation continues)",
    responses=errors(400, 403, 413),
)
async def pause(
    request: Request[Any, Any, Any],
    caller: CallerDep,
    runtime: RuntimeDep,
    data: JSONBody[PauseRequest | None] = None,
) -> SchedulerView:
    data = await optional_body(request, PauseRequest)
    reason = data.reason if data is not None else None
    await pause_scheduler(runtime, caller, reason)
    return await _scheduler_view(runtime)


@post("/scheduler/resume", status_code=200, summary="Restart admissions", responses=errors(403))
async def resume(caller: CallerDep, runtime: RuntimeDep) -> SchedulerView:
    await resume_scheduler(runtime, caller)
    return await _scheduler_view(runtime)


ADMIN_ROUTES: Final = [
    add_user,
    list_users,
    issue_key,
    set_cap,
    set_share,
    set_max_priority,
    revoke_key,
    scheduler,
    pause,
    resume,
]
