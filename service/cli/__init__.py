"""The `ftq` command line: one module per command group, all registered on `app`."""

from __future__ import annotations

from service.cli import (
    admin,
    client,
    demo,
    history,
    mcp,
    secrets,
    serve,
    simulate,
    usage,
    watch,
)
from service.cli.app import app


def main() -> None:
    """Entry point of the `ftq` console script."""
    app()


__all__ = [
    "admin",
    "app",
    "client",
    "demo",
    "history",
    "main",
    "mcp",
    "secrets",
    "serve",
    "simulate",
    "usage",
    "watch",
]
