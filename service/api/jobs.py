"""POST/GET /jobs, GET/DELETE /jobs/{id} (also served under /functions/v1/jobs-api)."""

from __future__ import annotations

from typing import Annotated, Any, Final

import asyncpg
from litestar import Request, Response, delete, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from events.domain.job_commands import SubmitJob
from events.domain.job_events import JobStatus, Kind
from service.api.auth import Caller, CallerDep
from service.api.common import RuntimeDep, StrictDTO, checked_uuid, errors, metadata, ok
from service.api.errors import ApiError, invalid, not_found
from service.api.intake import (
    IDEMPOTENCY_KEY,
    check_after,
    check_payload,
    check_priorities,
    known_jobs,
    submit_command,
)
from service.api.limits import check_flood_limits
from service.api.openapi_exact import NO_NUL
from service.api.pagination import CURSOR, MAX_CURSOR, decode_cursor, encode_cursor, next_link
from service.api.runtime import Runtime
from service.api.schemas import CancelResult, JobSubmission, JobView
from service.api.views import JobRow, job_row, job_views, row_of_state
from service.cancellation import CancelOutcome, cancel_job
from service.sql import QUERIES

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        max_length=255,
        pattern=IDEMPOTENCY_KEY,
        description="Printable ASCII, at most 255 characters. A retry with the same key and "
        "body returns the same job (200); the same key with another body is 409.",
    ),
]
LINK_HEADER: Final = ResponseHeader(
    name="Link",
    description='`<url>; rel="next"` when there is a next page',
    required=False,
    documentation_only=True,
)


async def _visible_job(runtime: Runtime, caller: Caller, job_id: str) -> JobRow:
    record = await runtime.pool.fetchrow(QUERIES["api_job_by_id"], checked_uuid(job_id))
    if record is None:
        raise not_found("no such job")
    row = job_row(record)
    if not caller.may_see(row.user_id):
        raise not_found("no such job")
    return row


async def _one_view(runtime: Runtime, row: JobRow) -> JobView:
    return (await job_views(runtime, [row]))[0]


def _wake(runtime: Runtime) -> None:
    if runtime.loop is not None:
        runtime.loop.wake()


async def _replay(runtime: Runtime, caller: Caller, key: str, fp: str) -> Response[JobView] | None:
    record = await runtime.pool.fetchrow(QUERIES["api_job_by_idempotency_key"], caller.user_id, key)
    if record is None:
        return None
    row = job_row(record)
    if row.request_fingerprint != fp:
        raise ApiError(
            409,
            "IDEMPOTENCY_CONFLICT",
            f"Idempotency-Key already used with another body (job {row.id})",
        )
    return Response(await _one_view(runtime, row), status_code=200)


@post(
    "/jobs",
    status_code=201,
    summary="Submit a job",
    responses={
        **errors(400, 403, 409, 413, 429),
        **ok(200, JobView, "idempotent retry: the same job"),
    },
    description="201 with the new job; 200 with the earlier job on an idempotent retry.",
    dto=StrictDTO[JobSubmission],
    return_dto=None,
)
async def submit_job(
    request: Request[Any, Any, Any],
    data: JSONBody[JobSubmission],
    caller: CallerDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Response[JobView]:
    data = check_payload(data)
    command = submit_command(
        data, caller, runtime.clock(), idempotency_key, runtime.settings.default_gpu_type
    )
    fp = command.request_fingerprint  # what a retry with the same key must match
    if idempotency_key is not None and fp is not None:
        earlier = await _replay(runtime, caller, idempotency_key, fp)
        if earlier is not None:
            return earlier
    await check_priorities(runtime, caller, [data])
    waiting = None  # why the new job will wait for others (`after`), if it will
    if data.after:
        waiting = check_after(data, caller, await known_jobs(runtime, [data]))
    await check_flood_limits(runtime, caller, 1)
    try:
        path = request.url.path
        view, location = await record_submission(runtime, caller, command, path, waiting)
    except asyncpg.UniqueViolationError:
        # A concurrent request with the same key won; our append rolled back.
        assert idempotency_key is not None and fp is not None
        earlier = await _replay(runtime, caller, idempotency_key, fp)
        if earlier is None:
            raise
        return earlier
    return Response(view, status_code=201, headers={"Location": location})


async def record_submission(
    runtime: Runtime, caller: Caller, command: SubmitJob, path: str, waiting: str | None = None
) -> tuple[JobView, str]:
    """Record the checked submission `command` of `caller`: the new job's view and its
    `Location` (under `path`, the alias too). `waiting`: why it waits for others (`after`).
    The route and `service.api.fast_submit` both end here."""
    state = await runtime.submitter.submit(command, metadata(caller))
    _wake(runtime)
    (view,) = await job_views(runtime, [row_of_state(state)], {state.job_id: waiting})
    return view, f"{path.rstrip('/')}/{view.id}"


@get(
    "/jobs",
    summary="List jobs, newest first",
    responses=errors(400, 403),
    response_headers=[LINK_HEADER],
)
async def list_jobs(
    request: Request[Any, Any, Any],
    caller: CallerDep,
    runtime: RuntimeDep,
    job_state: Annotated[JobStatus | None, QueryParameter(name="state")] = None,
    kind: Annotated[Kind | None, QueryParameter()] = None,
    user: Annotated[
        str | None,
        QueryParameter(description="admins: a user's email or id", max_length=320, pattern=NO_NUL),
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None,
        QueryParameter(
            description="opaque: the `cursor` of the previous page's `Link` header",
            pattern=CURSOR,
            max_length=MAX_CURSOR,
        ),
    ] = None,
) -> Response[list[JobView]]:
    if (
        user is not None
        and not caller.is_admin
        and user.lower() not in (caller.email, caller.user_id)
    ):
        raise ApiError(403, "FORBIDDEN", "the user filter is for admins")
    after = decode_cursor(cursor) if cursor is not None else None
    if user is not None and "\x00" in user:
        raise invalid("user must not contain NUL")
    async with runtime.pool.acquire() as conn:
        records = await conn.fetch(
            QUERIES["api_jobs_page"],
            None if caller.is_admin else caller.user_id,
            job_state,
            kind,
            user,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
    rows = [job_row(r) for r in records]
    views = await job_views(runtime, rows[:limit])
    headers: dict[str, str] = {}
    if len(rows) > limit:
        last = rows[limit - 1]
        headers["Link"] = next_link(request, encode_cursor(last.created_at, last.id))
    return Response(views, headers=headers)


@get("/jobs/{id:str}", summary="One job", responses=errors(404))
async def get_job(id: FromPath[str], caller: CallerDep, runtime: RuntimeDep) -> JobView:
    return await _one_view(runtime, await _visible_job(runtime, caller, id))


@delete(
    "/jobs/{id:str}",
    status_code=200,
    summary="Cancel a job",
    responses={**errors(404, 409), **ok(202, CancelResult, "cancel recorded, not yet done")},
    description="200 when cancelled; 202 when the cancel is recorded and the admission loop "
    "will carry it out on Fireworks.",
)
async def cancel(
    id: FromPath[str], caller: CallerDep, runtime: RuntimeDep
) -> Response[CancelResult]:
    row = await _visible_job(runtime, caller, id)
    outcome = await cancel_as(runtime, caller, row.id)
    if outcome.state.status == "CANCELLED":
        return Response(CancelResult(id=row.id, state="CANCELLED"), status_code=200)
    status = outcome.state.status or "PROGRESS"
    return Response(CancelResult(id=row.id, state=status, cancel_requested=True), status_code=202)


async def cancel_as(runtime: Runtime, caller: Caller, job_id: str) -> CancelOutcome:
    """Cancel a job the caller may see (the API and the dashboard both come here)."""
    outcome = await cancel_job(
        runtime.pool, runtime.client, job_id, caller.email, metadata(caller), waker=runtime.waker
    )
    _wake(runtime)
    return outcome


JOB_ROUTES: Final = [submit_job, list_jobs, get_job, cancel]
