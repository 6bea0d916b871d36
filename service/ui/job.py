"""One job: its whole history from the log as a timeline, wait and run time, the payload with
secrets as ***, and Cancel (with a confirmation step) while it is QUEUED or PROGRESS.
Another user's job is 404 for a member, exactly like GET /jobs/{id}."""

from __future__ import annotations

import json
from typing import Any, Final

from litestar import Request, get, post
from litestar.response import Redirect, Template

from events.store.log import head_cursor, read_stream
from service.api import jobs as jobs_api
from service.api.errors import ApiError
from service.api.streams import history_event
from service.api.views import decode_payload
from service.redaction import redact
from service.ui.queue import age
from service.ui.web import Signed, checked_form, signed_in

LABELS: Final = {
    "job.submitted": "Submitted",
    "job.admission_started": "Admission started",
    "job.admitted": "Admitted on Fireworks",
    "job.returned_to_queue": "Returned to the queue",
    "job.rejected": "Rejected by Fireworks",
    "job.fireworks_state_observed": "Fireworks state",
    "job.cancel_requested": "Cancel requested",
    "job.cancelled": "Cancelled",
    "job.succeeded": "Succeeded",
    "job.failed": "Failed",
    "job.dependency_failed": "Failed: a job it waits for did not succeed",
    "job.stuck_detected": "Looks stuck on Fireworks",
    "job.stuck_cleared": "Moving again on Fireworks",
}
_DETAIL_KEYS: Final = ("state", "progress", "reason", "by", "error", "fireworks_job_name")


async def _row(signed: Signed, job_id: str) -> Any:
    try:
        return await jobs_api._visible_job(signed.runtime, signed.caller, job_id)
    except ApiError as exc:  # the API's 404, rendered as a page
        raise ApiError(404, "NOT_FOUND", "no such job") from exc


def _detail(data: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {data[k]}" for k in _DETAIL_KEYS if data.get(k) is not None)


async def _context(signed: Signed, job_id: str) -> dict[str, Any]:
    row = await _row(signed, job_id)
    async with signed.runtime.pool.acquire() as conn:
        events = [history_event(e) for e in await read_stream(conn, row.id)]
        head = (await head_cursor(conn)).position
    now = signed.runtime.clock()
    timeline = [
        {"label": LABELS.get(e.type, e.type), "at": e.recorded_at, "detail": _detail(e.data)}
        for e in events
    ]
    payload = json.dumps(redact(decode_payload(row.fireworks_payload)), indent=2, sort_keys=True)
    return signed.context(
        "jobs",
        job=row,
        timeline=timeline,
        payload=payload,
        wait=age(row.created_at, row.started_at or row.completed_at or now),
        run=age(row.started_at, row.completed_at or now) if row.started_at else None,
        cancellable=row.state in ("QUEUED", "PROGRESS") and not row.cancel_requested_by,
        after=head,
    )


@get("/ui/jobs/{job_id:str}", include_in_schema=False)
async def job_page(request: Request[Any, Any, Any], job_id: str) -> Template:
    signed = await signed_in(request)
    return Template("job.html", context=await _context(signed, job_id))


@get("/ui/jobs/{job_id:str}/body", include_in_schema=False)
async def job_body(request: Request[Any, Any, Any], job_id: str) -> Template:
    signed = await signed_in(request)
    return Template("job_body.html", context=await _context(signed, job_id))


@post("/ui/jobs/{job_id:str}/cancel", include_in_schema=False, status_code=303)
async def cancel(request: Request[Any, Any, Any], job_id: str) -> Redirect:
    signed, _ = await checked_form(request)
    row = await _row(signed, job_id)
    if row.state in ("QUEUED", "PROGRESS"):
        await jobs_api.cancel_as(signed.runtime, signed.caller, row.id)
    return Redirect(f"/ui/jobs/{row.id}", status_code=303)


ROUTES: Final = [job_page, job_body, cancel]
