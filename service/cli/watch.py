"""`ftq watch ID`: follow a job's history stream (SSE) until it is terminal.

A live progress bar (stderr, terminals only) follows the Fireworks `progress` percent;
state changes are printed as lines. A dropped connection is resumed with `Last-Event-ID`.
Exit code: 0 SUCCESS, 1 FAIL, 3 CANCELLED."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import aiohttp
import msgspec
import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from service.cli.app import Failure, app, err, note, out, run
from service.cli.http import DEFAULT_URL, Api, Key, Url, api, error_text

FINAL: Final = {
    "job.succeeded": "SUCCESS",
    "job.failed": "FAIL",
    "job.rejected": "FAIL",
    "job.dependency_failed": "FAIL",
    "job.cancelled": "CANCELLED",
}
EXIT_CODE: Final = {"SUCCESS": 0, "FAIL": 1, "CANCELLED": 3}
STATE_AFTER: Final = {
    "job.submitted": "QUEUED",
    "job.returned_to_queue": "QUEUED",
    "job.admission_started": "PROGRESS",
    **FINAL,
}
STREAM_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
DROPPED: Final = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError)
MAX_RECONNECTS: Final = 60

SseEvent = tuple[int | None, str, dict[str, Any]]


def _parse(block: bytes) -> SseEvent | None:
    """One SSE event block (lines without the blank separator); None for comments only."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in block.decode(errors="replace").splitlines():
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    if not data:
        return None
    event = msgspec.json.decode("\n".join(data))
    position = int(fields["id"]) if fields.get("id", "").isdigit() else None
    return position, fields.get("event") or event.get("type", ""), event.get("data") or {}


async def events(api_: Api, job_id: str, last_id: int | None) -> AsyncIterator[SseEvent]:
    """The job's events after `last_id`, live, until the server ends the stream."""
    headers = {"Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    url = f"{api_.url}/jobs/{job_id}/events/stream"
    async with api_.session.get(url, headers=headers, timeout=STREAM_TIMEOUT) as resp:
        if resp.status >= 300:
            raise Failure(error_text(resp.status, await resp.read()))
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer = (buffer + chunk).replace(b"\r\n", b"\n")
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                parsed = _parse(block)
                if parsed is not None:
                    yield parsed


class View:
    """What the user sees: state lines, and a bar from Fireworks' progress percent."""

    def __init__(self, job_id: str, progress: Progress) -> None:
        self.job_id = job_id
        self.progress = progress
        self.task = progress.add_task(job_id[:8], total=100, status="")
        self.state: str | None = None
        self.fireworks: str | None = None

    def show(self, type_: str, data: dict[str, Any]) -> None:
        state = STATE_AFTER.get(type_)
        if state is not None and state != self.state:
            self.state = state
            details = [data.get(k) for k in ("message", "reason", "fireworks_job_name")]
            detail = next((d for d in details if isinstance(d, str) and d), None)
            out.print(state + (f" ({detail})" if detail else ""))
        fireworks = data.get("fireworks_state")
        if type_ == "job.fireworks_state_observed" and fireworks != self.fireworks:
            self.fireworks = fireworks
            out.print(f"  Fireworks: {fireworks}")
        if type_ == "job.cancel_requested":
            out.print(f"  cancel requested by {data.get('by')}")
        if data.get("progress") is not None:
            self.progress.update(self.task, completed=float(data["progress"]))
        self.progress.update(self.task, status=self.fireworks or self.state or "")


async def follow(api_: Api, job_id: str, view: View) -> str:
    """Follow the stream until a terminal event; returns the final state. A dropped stream,
    or one the server ends early (e.g. while it restarts), is resumed from the last event
    seen (Last-Event-ID), so nothing is shown twice or missed."""
    last_id: int | None = None
    drops = 0
    while True:
        why = "the server ended the stream"
        try:
            async for position, type_, data in events(api_, job_id, last_id):
                last_id, drops = position if position is not None else last_id, 0
                view.show(type_, data)
                if type_ in FINAL:
                    return FINAL[type_]
        except DROPPED as exc:
            why = f"connection dropped ({type(exc).__name__})"
        drops += 1
        if drops > MAX_RECONNECTS:
            raise Failure(f"lost the stream: {why}") from None
        note(f"{why}; reconnecting")
        await asyncio.sleep(min(drops, 5))


@app.command()
def watch(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """Follow a job live until it ends; exit 0 SUCCESS, 1 FAIL, 3 CANCELLED."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    )

    async def go() -> str:
        async with api(url, key) as client:
            with bar:
                return await follow(client, job_id, View(job_id, bar))

    final = run(go())
    out.print(f"{job_id} {final}")
    raise typer.Exit(EXIT_CODE[final])
