"""`ftq mcp`: the Model Context Protocol server for coding agents, on stdin/stdout.

It talks to a running ftq over HTTP like the other client commands (FTQ_URL, SFTQ_API_KEY),
never to Fireworks. The SDK is imported only when the command runs, so the rest of the CLI
starts as fast as before."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.app import app, run
from service.cli.http import DEFAULT_URL, Key, Url


@app.command("mcp")
def mcp_command(
    url: Url = DEFAULT_URL,
    key: Key = None,
    log_level: Annotated[
        str, typer.Option(envvar="FTQ_LOG_LEVEL", help="Level of the log lines on stderr.")
    ] = "info",
) -> None:
    """Serve ftq's job tools to an MCP client (Claude Code, ...) over stdio."""
    from service.mcp.server import configure_logging, serve  # noqa: PLC0415 (see docstring)

    configure_logging(log_level)
    run(serve(url, key))
