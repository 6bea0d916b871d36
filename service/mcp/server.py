"""The MCP server itself (the SDK's low-level `Server` over stdio): lists the tools, checks
each call's arguments, runs it against ftq and answers its result, or a tool error (isError)
in ftq's error shape. One log line a call on stderr: tool, outcome, duration; never its
arguments, results or the key."""

from __future__ import annotations

import logging
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from traceback import format_tb
from typing import Any, Final

import mcp_types as types
import msgspec
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from service.mcp.client import Ftq, connect
from service.mcp.errors import ToolFailure
from service.mcp.handlers import HANDLERS
from service.mcp.progress import TOTAL, Report
from service.mcp.tools import TOOL_BY_NAME, TOOLS, ToolSpec

log = logging.getLogger("ftq.mcp")

INSTRUCTIONS: Final = (
    "ftq is the fair queue in front of this team's Fireworks fine-tuning GPUs. Submit, watch "
    "and cancel SFT, DPO and RFT jobs only with these tools (or the ftq CLI / HTTP API); never "
    "call Fireworks' fine-tuning endpoints (supervisedFineTuningJobs, dpoJobs, "
    "reinforcementFineTuningJobs) or `firectl` job commands directly: that bypasses the "
    "per-user caps and the GPU headroom every other user relies on."
)


def _version() -> str:
    try:
        return version("ftq")
    except PackageNotFoundError:
        return "0"


def _tool(spec: ToolSpec) -> types.Tool:
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=spec.input_schema(),
        annotations=types.ToolAnnotations(
            title=spec.title,
            read_only_hint=spec.read_only,
            destructive_hint=spec.destructive,
            idempotent_hint=spec.read_only or spec.destructive,
            open_world_hint=False,
        ),
    )


def _result(structured: dict[str, Any], *, is_error: bool = False) -> types.CallToolResult:
    text = msgspec.json.encode(structured).decode()
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=structured, is_error=is_error
    )


def build_server(ftq: Ftq) -> Server[Any]:
    """The server's handlers, over one ftq session."""
    listed = types.ListToolsResult(tools=[_tool(spec) for spec in TOOLS])

    async def list_tools(
        _: ServerRequestContext[Any, Any], __: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listed

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        spec = TOOL_BY_NAME.get(params.name)
        if spec is None:
            raise MCPError(types.INVALID_PARAMS, f"no tool named {params.name!r}")

        async def report(item: Report) -> None:
            await ctx.session.report_progress(item.progress, TOTAL, item.message)

        started = time.monotonic()
        outcome = "cancelled"  # by the client, unless one of the outcomes below
        try:
            arguments = spec.parse(params.arguments)
            result = _result(await HANDLERS[spec.name](ftq, arguments, report))
            outcome = "ok"
            return result
        except ToolFailure as failure:
            outcome = failure.code
            return _result(failure.body(), is_error=True)
        except Exception as exc:  # never the server's end: the agent gets an error, we a log
            # The frames, not the exception's text: that could hold a payload's values.
            outcome = f"INTERNAL {type(exc).__name__}"
            log.error("tool=%s crashed:\n%s", spec.name, "".join(format_tb(exc.__traceback__)))
            crashed = ToolFailure("INTERNAL", "the ftq MCP server failed on this call")
            return _result(crashed.body(), is_error=True)
        finally:
            elapsed_ms = (time.monotonic() - started) * 1000
            log.info("tool=%s outcome=%s ms=%.0f", spec.name, outcome, elapsed_ms)

    return Server(
        "ftq",
        version=_version(),
        title="ftq fine-tuning queue",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def configure_logging(level: str) -> None:
    """Log lines on stderr (stdout is the protocol); the SDK's own only from WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    log.setLevel(logging.getLevelNamesMapping().get(level.upper(), logging.INFO))


async def serve(url: str, key: str | None) -> None:
    """Serve MCP on stdin/stdout until the client closes it."""
    if not key:
        log.warning("SFTQ_API_KEY is not set: every tool call will fail UNAUTHENTICATED")
    log.info("serving ftq's tools for %s", url)
    async with connect(url, key) as ftq:
        server = build_server(ftq)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
