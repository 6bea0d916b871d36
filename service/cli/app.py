"""The typer app every command module registers on, and what they share: the consoles,
settings loading, a database pool for commands that talk to PostgreSQL directly, and the
one way a command fails (a one-line message on stderr and an exit code, no traceback)."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated, Any, NoReturn, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from events.domain.rejections import CommandRejected
from events.store.migrations import MigrationEdited
from service.api.errors import public_code
from service.database import (
    create_pool,
    describe_url,
    migrate,
    resolve_database_url,
    stop_embedded,
)
from service.demo_dir import running_demo
from service.settings import Settings, SettingsError, load_settings

T = TypeVar("T")

app = typer.Typer(
    name="ftq",
    help="ftq: a fair, event-sourced queue in front of a Fireworks account's fine-tuning GPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Add users, list them and set their PROGRESS caps.")
keys_app = typer.Typer(help="Issue, revoke and list API keys (sftq_...).")
scheduler_app = typer.Typer(help="Pause or resume admissions (reconciliation goes on).")


def _show_version(value: bool) -> None:
    if value:
        try:
            shown = package_version("ftq")
        except PackageNotFoundError:  # run from a checkout that was never installed
            shown = "unknown (not installed)"
        print(f"ftq {shown}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print ftq's version."
        ),
    ] = False,
) -> None:
    """Options of `ftq` itself (before the command)."""


app.add_typer(users_app, name="users", no_args_is_help=True)
app.add_typer(keys_app, name="keys", no_args_is_help=True)
app.add_typer(scheduler_app, name="scheduler", no_args_is_help=True)

# Piped output is not cut to 80 columns: tables stay one line per row for grep and friends.
_PIPED_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
out = Console(soft_wrap=True, width=_PIPED_WIDTH)
err = Console(stderr=True, soft_wrap=True)
_SHORT = frozenset({"kind", "state", "gpus", "pos", "progress", "role", "cap", "created"})


class Failure(Exception):
    """A command failed in a way the user can act on; `main` prints it, no traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` as one line on stderr and exit with `code`."""
    err.print(Text(message, style="red"))
    raise typer.Exit(code)


def table(*headers: str, title: str | None = None) -> Table:
    """A results table; `id` columns are never shortened (people copy them into commands)."""
    result = Table(title=title)
    for header in headers:
        if header == "id":
            result.add_column(header, no_wrap=True, min_width=36)
        elif header in _SHORT:
            result.add_column(header, no_wrap=True)
        else:
            result.add_column(header, overflow="fold")
    return result


def note(message: str) -> None:
    """Informational text for people, on stderr (stdout stays for results)."""
    err.print(Text(message))


def settings_or_exit() -> Settings:
    """Settings from the environment and `.env`; a bad or missing one exits 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), 2)


def actor() -> dict[str, Any]:
    """Event metadata naming who ran the command."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = f"uid{os.getuid()}"
    return {"actor": f"cli:{name}"}


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; known failures become a message and an exit code."""
    try:
        return asyncio.run(coro)
    except Failure as exc:
        fail(exc.message, exc.code)
    except CommandRejected as exc:
        fail(f"{public_code(exc)}: {exc.message}")
    except MigrationEdited as exc:
        fail(f"refusing to migrate: {exc}")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        fail(f"database: {type(exc).__name__}: {exc}")


def which_database(settings: Settings) -> tuple[str, str]:
    """The URL a command opens and a line saying which database that is: DATABASE_URL; else
    the database of the `ftq demo` running on the data directory; else the embedded server
    (started, or shared with another process)."""
    if settings.database_url:
        return settings.database_url, f"{describe_url(settings.database_url)} (DATABASE_URL)"
    demo = running_demo(settings.data_dir)
    if demo is not None and demo.database_url:
        return demo.database_url, (
            f"{describe_url(demo.database_url)}: the running ftq demo's (port {demo.port}, "
            f"pid {demo.pid}), as DATABASE_URL is not set"
        )
    pg = settings.data_dir / "pg"
    url = resolve_database_url(None, pg)
    return url, (
        f"{describe_url(url)}: embedded PostgreSQL in {pg}, as DATABASE_URL is not set "
        "and no ftq demo is running"
    )


@asynccontextmanager
async def database(settings: Settings, *, migrated: bool = True) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on `which_database` (said on stderr), migrated unless told not to."""
    url, which = await asyncio.to_thread(which_database, settings)
    note(f"using {which}")
    try:
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            if migrated:
                await migrate(pool)
            yield pool
        finally:
            await pool.close()
    finally:
        stop_embedded()
