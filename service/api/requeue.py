"""POST /jobs/{id}/requeue (also under /functions/v1/jobs-api): a FAIL or CANCELLED job
submitted again as a new job, linked to the old one (`requeued_from`)."""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, post
from litestar.params import FromPath

from events.domain.job import JOB
from events.domain.requeue import requeue
from events.store.ids import new_job_id
from projections.recorder import load
from service.api.auth import CallerDep
from service.api.common import RuntimeDep, errors, metadata
from service.api.jobs import _visible_job
from service.api.limits import check_flood_limits
from service.api.schemas import JobView
from service.api.secrets import requeue_with_secrets
from service.api.views import job_views, row_of_state


@post(
    "/jobs/{id:str}/requeue",
    status_code=201,
    summary="Requeue a failed or cancelled job",
    responses=errors(404, 409, 429),
    description="201 with a new job (same owner, kind, payload, GPUs and runtime limit, "
    "`requeued_from` the old job) at the back of the queue. The owner or an admin may "
    "requeue; a job QUEUED, in PROGRESS or SUCCESS is 409 INVALID_STATE; a job whose payload "
    "secrets were shredded is 400 naming the fields (submit it again with them).",
)
async def requeue_job(
    request: Request[Any, Any, Any], id: FromPath[str], caller: CallerDep, runtime: RuntimeDep
) -> Response[JobView]:
    row = await _visible_job(runtime, caller, id)  # 404 for another member's job
    async with runtime.pool.acquire() as conn:
        old = await load(conn, JOB, row.id)
    command = requeue(old, new_job_id(), runtime.clock())  # 409 unless FAIL/CANCELLED
    command = await requeue_with_secrets(runtime, old, command)  # 400 if shredded
    await check_flood_limits(runtime, caller, 1)  # a requeue is a new job like any other
    state = await runtime.submitter.submit(command, metadata(caller))
    if runtime.loop is not None:
        runtime.loop.wake()
    (view,) = await job_views(runtime, [row_of_state(state)])
    prefix = request.url.path.rsplit("/jobs/", 1)[0]  # "" or the compatibility alias
    return Response(view, status_code=201, headers={"Location": f"{prefix}/jobs/{view.id}"})


REQUEUE_ROUTES: Final = [requeue_job]
