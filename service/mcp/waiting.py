"""`wait_for_job`: follow a job's history stream (SSE, as `ftq watch` does) until the job is
terminal or the caller's timeout passes, reporting progress on the way.

The stream starts after the last event the job's history already holds (Last-Event-ID), so
only what happens from now on is reported; a dropped stream, or ftq restarting, is resumed
from the last event seen until the deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from service.cli.app import Failure
from service.cli.watch import DROPPED, FINAL, STATE_AFTER, events
from service.mcp.client import Ftq
from service.mcp.errors import ToolFailure
from service.mcp.progress import JobProgress, Report

Reporter = Callable[[Report], Awaitable[None]]
MAX_PAUSE_S: Final = 5.0


async def wait_for_job(ftq: Ftq, job_id: str, timeout_s: float, report: Reporter) -> dict[str, Any]:
    """The job once terminal, or as it stands at the deadline, with `timed_out`."""
    job = await ftq.job(job_id)
    progress = JobProgress(job)
    await _send(report, progress.report())
    if progress.ended:
        return {**job, "timed_out": False}
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            await _follow(ftq, job_id, progress, report)
    except TimeoutError:
        if not deadline.expired():
            raise
    job = await ftq.job(job_id)
    await _send(report, progress.refreshed(job))
    return {**job, "timed_out": not progress.ended}


async def _follow(ftq: Ftq, job_id: str, progress: JobProgress, report: Reporter) -> None:
    history: list[dict[str, Any]] = (await ftq.call("GET", f"/jobs/{job_id}/events")).body
    # What happened between the GET and this read (e.g. the admission) is reported too: the
    # events after the one that put the job in the state the GET showed.
    caught_up = False
    for event in history:
        if not caught_up:
            caught_up = STATE_AFTER.get(event["type"]) == progress.state
            continue
        await _send(report, progress.observe(event["type"], event.get("data") or {}))
    if any(event["type"] in FINAL for event in history):
        return
    last_id: int | None = history[-1]["position"] if history else None
    pauses = 0
    while True:
        try:
            async for position, type_, data in events(ftq.session(), job_id, last_id):
                last_id, pauses = position if position is not None else last_id, 0
                await _send(report, progress.observe(type_, data))
                if type_ in FINAL:
                    return
                if type_ == "job.returned_to_queue":
                    await _send(report, progress.refreshed(await ftq.job(job_id)))
        except DROPPED:
            pass  # resumed below, from last_id
        except Failure as exc:  # the stream itself was refused (e.g. the key was revoked)
            code, _, message = exc.message.partition(": ")
            if not code.isupper() or " " in code:  # not ftq's answer (`HTTP 502: ...`)
                code, message = "UNAVAILABLE", exc.message
            raise ToolFailure(code, message) from None
        # The stream ended or dropped with the job not yet seen to end: ftq may have restarted.
        pauses += 1
        try:
            if (await ftq.job(job_id))["state"] in FINAL.values():
                return
        except ToolFailure as failure:
            if failure.code != "UNAVAILABLE":
                raise
        await asyncio.sleep(min(float(pauses), MAX_PAUSE_S))


async def _send(report: Reporter, item: Report | None) -> None:
    if item is not None:
        await report(item)
