"""`ftq watch ID`: follow a job's history stream (SSE) until it is terminal.

On a terminal, one live line that is rewritten in place: the state, while QUEUED the queue
position and pending reason, then the Fireworks state and a bar of its percent; it is left
showing the end (SUCCESS at 100 %). Piped, plain lines: one per change, and last
`ID STATE` (after the FAIL or cancel message, if any). A dropped connection is resumed
with `Last-Event-ID`. Exit codes: EXIT_CODES_HELP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final, Protocol

import aiohttp
import msgspec
import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from service.cli.app import Failure, app, note, out, run
from service.cli.eta_text import eta_words
from service.cli.http import DEFAULT_URL, Api, Key, Url, api, error_text

FINAL: Final = {
    "job.succeeded": "SUCCESS",
    "job.failed": "FAIL",
    "job.rejected": "FAIL",
    "job.dependency_failed": "FAIL",
    "job.cancelled": "CANCELLED",
}
EXIT_CODE: Final = {"SUCCESS": 0, "FAIL": 1, "CANCELLED": 3}
NO_SUCH_JOB: Final = 4
NOT_AUTHORISED: Final = 5
UNREACHABLE: Final = 6
EXIT_CODES_HELP: Final = (
    "Exit codes: 0 SUCCESS, 1 FAIL, 3 CANCELLED, 4 no such job, 5 not authorised (bad or "
    "revoked key), 6 server unreachable, 2 usage errors (no key)."
)
STATE_AFTER: Final = {
    "job.submitted": "QUEUED",
    "job.returned_to_queue": "QUEUED",
    "job.admission_started": "PROGRESS",
    **FINAL,
}
STREAM_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
DROPPED: Final = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError)
MAX_RECONNECTS: Final = 60
POLL_QUEUED_S: Final = 2.0  # how often a QUEUED job's position and reason are asked for

SseEvent = tuple[int | None, str, dict[str, Any]]


def _exit_code(status: int) -> int:
    if status == 404:
        return NO_SUCH_JOB
    if status in (401, 403):
        return NOT_AUTHORISED
    return 1


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
            raise Failure(error_text(resp.status, await resp.read()), _exit_code(resp.status))
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer = (buffer + chunk).replace(b"\r\n", b"\n")
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                parsed = _parse(block)
                if parsed is not None:
                    yield parsed


async def current(api_: Api, job_id: str) -> dict[str, Any]:
    """GET /jobs/{id}: the job as it is now (queue position and pending reason included)."""
    try:
        async with api_.session.get(f"{api_.url}/jobs/{job_id}") as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise Failure(error_text(resp.status, raw), _exit_code(resp.status))
            view: dict[str, Any] = msgspec.json.decode(raw)
            return view
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Failure(f"cannot reach {api_.url}: {type(exc).__name__}", UNREACHABLE) from None


class Status(msgspec.Struct):
    """What is known of the job now, from its events and, while QUEUED, its GET."""

    job_id: str
    state: str | None = None
    position: int | None = None
    reason: str | None = None
    eta: str | None = None  # QUEUED: the API's estimated admission (ISO time)
    fireworks: str | None = None
    progress: float | None = None
    detail: str | None = None
    cancel_by: str | None = None
    cancel_why: str | None = None
    stuck: str | None = None

    def apply(self, type_: str, data: dict[str, Any]) -> None:
        state = STATE_AFTER.get(type_)
        if state is not None and state != self.state:
            self.state = state
            self.position = self.reason = self.eta = None
            message = data.get("message") or data.get("reason")
            self.detail = message if isinstance(message, str) and message else None
        if isinstance(fireworks := data.get("fireworks_state"), str):
            self.fireworks = fireworks
        if isinstance(progress := data.get("progress"), int | float):
            self.progress = float(progress)
        if type_ == "job.cancel_requested":
            self.cancel_by = str(data.get("by"))
            why = data.get("reason")
            self.cancel_why = why if isinstance(why, str) and why else None
        if type_ == "job.stuck_detected":
            self.stuck = str(data.get("reason") or "no progress")
        if type_ == "job.stuck_cleared" or type_ in STATE_AFTER:
            self.stuck = None
        if type_ == "job.succeeded":
            self.progress = 100.0

    def placed(self, view: dict[str, Any]) -> None:
        """The queue position and reason of a GET, while the events also say QUEUED."""
        if view.get("state") == "QUEUED" and self.state in (None, "QUEUED"):
            self.state = "QUEUED"
            self.position = view.get("queue_position")
            self.reason = view.get("pending_reason")
            eta = view.get("eta")
            self.eta = eta if isinstance(eta, str) else None

    def words(self) -> str:
        """The state and what goes with it, without the bar: `QUEUED position 2: ...`."""
        parts = [self.state or "?"]
        if self.state == "QUEUED":
            if self.position is not None:
                reason = f": {self.reason}" if self.reason else ""
                parts.append(f"position {self.position}{reason}")
            if self.eta:
                parts.append(f"(ETA {eta_words(self.eta)})")
            if self.detail:
                parts.append(f"({self.detail})")
        else:
            if self.fireworks:
                parts.append(f"Fireworks {self.fireworks}")
            if self.detail and self.state in ("FAIL", "CANCELLED"):
                parts.append(f"({self.detail})")
        if self.cancel_by and self.state == "PROGRESS":
            why = f": {self.cancel_why}" if self.cancel_why else ""
            parts.append(f"cancel requested by {self.cancel_by}{why}")
        if self.stuck and self.state == "PROGRESS":
            parts.append(f"looks stuck: {self.stuck}")
        return "  ".join(parts)


class Display(Protocol):
    def update(self, status: Status) -> None: ...

    def note(self, message: str) -> None: ...

    def end(self, status: Status) -> None: ...


class Lines:
    """Piped: a line when the state (or a QUEUED job's place) changes, an indented one when
    the Fireworks state or percent does; `ID STATE` last."""

    def __init__(self) -> None:
        self._state: str | None = None
        self._fireworks: tuple[str | None, float | None] = (None, None)

    def update(self, status: Status) -> None:
        if status.state is None or status.state in EXIT_CODE:
            return  # nothing known yet; or the last line says it
        words = status.words() if status.state == "QUEUED" else status.state
        if status.cancel_by and status.state == "PROGRESS":
            words += f" (cancel requested by {status.cancel_by})"
        if status.stuck and status.state == "PROGRESS":
            words += f" (looks stuck: {status.stuck})"
        if words != self._state:
            self._state = words
            out.print(words, highlight=False)
        fireworks = (status.fireworks, status.progress)
        if status.state == "PROGRESS" and status.fireworks and fireworks != self._fireworks:
            self._fireworks = fireworks
            percent = "" if status.progress is None else f"  {status.progress:g}%"
            out.print(f"  Fireworks {status.fireworks}{percent}", highlight=False)

    def note(self, message: str) -> None:
        note(message)

    def end(self, status: Status) -> None:
        if status.detail and status.state != "SUCCESS":
            out.print(f"  {status.detail}", highlight=False)
        out.print(f"{status.job_id} {status.state}", highlight=False)  # scripts read this


class OneLine:
    """A terminal: one live line, redrawn in place, left showing the end."""

    def __init__(self) -> None:
        self._live = Live(console=out, auto_refresh=False, transient=False)
        self._live.start()

    def _render(self, status: Status) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        words = Text(status.words(), overflow="ellipsis", no_wrap=True)
        if status.progress is None or status.state == "QUEUED":
            grid.add_row(Text(status.job_id, style="bold"), words)
            return grid
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        bar = ProgressBar(total=100, completed=status.progress, width=24)
        grid.add_row(Text(status.job_id, style="bold"), words, bar, f"{status.progress:.0f}%")
        return Group(grid)

    def update(self, status: Status) -> None:
        if status.state is not None:
            self._live.update(self._render(status), refresh=True)

    def note(self, message: str) -> None:
        self._live.console.print(Text(message), highlight=False)  # above the live line

    def end(self, status: Status) -> None:
        self._live.update(self._render(status), refresh=True)
        self._live.stop()

    def close(self) -> None:
        if self._live.is_started:
            self._live.stop()


async def follow(api_: Api, job_id: str, display: Display) -> str:
    """Follow the stream until a terminal event; returns the final state. A dropped stream,
    or one the server ends early (e.g. while it restarts), is resumed from the last event
    seen (Last-Event-ID), so nothing is shown twice or missed. While the job is QUEUED its
    position and reason are asked for every POLL_QUEUED_S."""
    status = Status(job_id)
    status.placed(await current(api_, job_id))
    display.update(status)
    poller = asyncio.create_task(_poll_queued(api_, status, display))
    try:
        final = await _stream(api_, status, display)
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    display.end(status)
    return final


async def _poll_queued(api_: Api, status: Status, display: Display) -> None:
    while True:
        await asyncio.sleep(POLL_QUEUED_S)
        if status.state != "QUEUED":
            continue
        with contextlib.suppress(Failure):
            status.placed(await current(api_, status.job_id))
            display.update(status)


async def _stream(api_: Api, status: Status, display: Display) -> str:
    last_id: int | None = None
    drops = 0
    while True:
        why = "the server ended the stream"
        try:
            async for position, type_, data in events(api_, status.job_id, last_id):
                last_id, drops = position if position is not None else last_id, 0
                status.apply(type_, data)
                if type_ in FINAL:
                    return FINAL[type_]
                display.update(status)
        except DROPPED as exc:
            why = f"connection dropped ({type(exc).__name__})"
        drops += 1
        if drops > MAX_RECONNECTS:
            raise Failure(f"lost the stream: {why}", UNREACHABLE) from None
        display.note(f"{why}; reconnecting")
        await asyncio.sleep(min(drops, 5))


@app.command(help=f"Follow a job live until it ends. {EXIT_CODES_HELP}", epilog=EXIT_CODES_HELP)
def watch(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """Follow a job live until it ends (exit codes: see --help)."""

    async def go() -> str:
        async with api(url, key) as client:
            display = OneLine() if out.is_terminal else Lines()
            try:
                return await follow(client, job_id, display)
            finally:
                if isinstance(display, OneLine):
                    display.close()

    final = run(go())
    raise typer.Exit(EXIT_CODE[final])
