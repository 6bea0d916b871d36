"""What each tool does over ftq's HTTP API, given its checked arguments; each returns the
tool's structured result (always a JSON object, as MCP's structured content must be)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from service.mcp.client import Ftq, next_cursor
from service.mcp.tools import (
    JobArguments,
    ListJobsArguments,
    NoArguments,
    SubmitJobArguments,
    WaitArguments,
)
from service.mcp.waiting import Reporter, wait_for_job

Handler = Callable[[Ftq, Any, Reporter], Awaitable[dict[str, Any]]]


async def submit_job(ftq: Ftq, args: SubmitJobArguments, _: Reporter) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": args.kind,
        "fireworks_payload": args.fireworks_payload,
        "gpu_count": args.gpu_count,
    }
    if args.display_name is not None:
        body["display_name"] = args.display_name
    if args.gpu_type is not None:
        body["gpu_type"] = args.gpu_type
    if args.max_runtime_minutes is not None:
        body["max_runtime_minutes"] = args.max_runtime_minutes
    if args.after:
        body["after"] = [str(job_id) for job_id in args.after]
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    job: dict[str, Any] = (await ftq.call("POST", "/jobs", body=body, headers=headers)).body
    return job


async def list_jobs(ftq: Ftq, args: ListJobsArguments, _: Reporter) -> dict[str, Any]:
    filters = {"state": args.state, "kind": args.kind, "cursor": args.cursor, "user": args.user}
    params = {"limit": str(args.limit)} | {k: v for k, v in filters.items() if v is not None}
    answer = await ftq.call("GET", "/jobs", params=params)
    return {"jobs": answer.body, "next_cursor": next_cursor(answer.headers)}


async def get_job(ftq: Ftq, args: JobArguments, _: Reporter) -> dict[str, Any]:
    return await ftq.job(str(args.job_id))


async def cancel_job(ftq: Ftq, args: JobArguments, _: Reporter) -> dict[str, Any]:
    answer = await ftq.call("DELETE", f"/jobs/{args.job_id}")
    # 202: recorded, and the admission loop will cancel on Fireworks once it can reach it.
    return {**answer.body, "carried_out_later": answer.status == 202}


async def requeue_job(ftq: Ftq, args: JobArguments, _: Reporter) -> dict[str, Any]:
    job: dict[str, Any] = (await ftq.call("POST", f"/jobs/{args.job_id}/requeue")).body
    return job


async def queue(ftq: Ftq, _: NoArguments, __: Reporter) -> dict[str, Any]:
    return {"queue": (await ftq.call("GET", "/queue")).body}


async def capacity(ftq: Ftq, _: NoArguments, __: Reporter) -> dict[str, Any]:
    found: dict[str, Any] = (await ftq.call("GET", "/capacity")).body
    return found


async def job_history(ftq: Ftq, args: JobArguments, _: Reporter) -> dict[str, Any]:
    return {"events": (await ftq.call("GET", f"/jobs/{args.job_id}/events")).body}


async def wait(ftq: Ftq, args: WaitArguments, report: Reporter) -> dict[str, Any]:
    return await wait_for_job(ftq, str(args.job_id), args.timeout_s, report)


HANDLERS: Final[dict[str, Handler]] = {
    "submit_job": submit_job,
    "list_jobs": list_jobs,
    "get_job": get_job,
    "cancel_job": cancel_job,
    "requeue_job": requeue_job,
    "queue": queue,
    "capacity": capacity,
    "job_history": job_history,
    "wait_for_job": wait,
}
