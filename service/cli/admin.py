"""Administration straight against the database: migrations, users, API keys.

Every change is recorded in the event log with metadata `{"actor": "cli:<os user>"}`."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

import typer

from events.domain.directory import SCHEDULER, PauseScheduler, ResumeScheduler
from events.domain.directory_events import SCHEDULER_STREAM, Role
from service import directory
from service.cli.app import (
    Failure,
    actor,
    app,
    database,
    keys_app,
    note,
    out,
    run,
    scheduler_app,
    table,
)
from service.cli.app import settings_or_exit as settings
from service.cli.app import users_app as users
from service.clock import utcnow
from service.commands import run_command
from service.database import migrate as apply_migrations
from service.sql import QUERIES


@app.command()
def migrate() -> None:
    """Apply pending database migrations (safe to run again: it applies only what is new)."""

    async def go() -> list[str]:
        async with database(settings(), migrated=False) as pool:
            return await apply_migrations(pool)

    applied = run(go())
    for label in applied:
        out.print(f"applied {label}")
    if not applied:
        out.print("up to date")


def _when(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(sep=" ", timespec="seconds")[:19]


@users.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The user's email (case-insensitive).")],
    role: Annotated[Role, typer.Option(help="admin or member.")] = "member",
) -> None:
    """Add a user (no key yet: issue one with `ftq keys issue EMAIL`)."""

    async def go() -> directory.User:
        async with database(settings()) as pool:
            return await directory.add_user(pool, email, role, actor())

    user = run(go())
    out.print(f"added {user.role} {user.email} (id {user.id})")


@users.command("list")
def users_list() -> None:
    """List users with their role, caps (blank: the default; `none`: no cap), share weight
    and maximum priority."""

    async def go() -> list[directory.User]:
        async with database(settings()) as pool:
            return await directory.list_users(pool)

    shown = table("email", "role", "cap", "big cap", "share", "max priority", "id")
    for user in run(go()):
        shown.add_row(
            user.email,
            user.role,
            user.cap_text("small"),
            user.cap_text("big"),
            "" if user.share is None else f"{user.share:g}",
            "" if user.max_priority is None else str(user.max_priority),
            user.id,
        )
    out.print(shown)


def _known_user(pool: Any, email: str) -> Any:
    return directory.find_user(pool, email=email)


@users.command("cap")
def users_cap(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    cap: Annotated[
        str, typer.Argument(help="Jobs in PROGRESS allowed, `default`, or `none` (no cap).")
    ],
    size_class: Annotated[
        str,
        typer.Option(
            "--class",
            help="The size class the cap is for: small (the one cap without "
            "classes) or big (jobs of at least FTQ_BIG_JOB_GPUS GPUs).",
        ),
    ] = "small",
) -> None:
    """Set a user's cap of jobs in PROGRESS of a size class, or return them to the default."""
    value, unlimited = _parse_cap(cap)
    if size_class not in ("small", "big"):
        raise typer.BadParameter("small or big", param_hint="--class")
    chosen: Literal["small", "big"] = "big" if size_class == "big" else "small"

    async def go() -> None:
        async with database(settings()) as pool:
            if await _known_user(pool, email) is None:
                raise Failure(f"NOT_FOUND: no user {email}")
            await directory.set_cap(
                pool, email, value, actor(), size_class=chosen, unlimited=unlimited
            )

    run(go())
    shown = "no cap" if unlimited else "the default" if value is None else str(value)
    out.print(f"{chosen} cap of {email} set to {shown}")


def _parse_cap(text: str) -> tuple[int | None, bool]:
    word = text.strip().lower()
    if word == "default":
        return None, False
    if word == "none":
        return None, True
    if not word.isdigit():
        raise typer.BadParameter("a non-negative integer, `default` or `none`", param_hint="CAP")
    return int(word), False


@users.command("share")
def users_share(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    share: Annotated[str, typer.Argument(help="Fair-share weight (> 0), or `default` (1).")],
) -> None:
    """Set a user's fair-share weight: under FTQ_POLICY=fair-share their usage counts
    divided by it (2 = twice the share of a user with weight 1)."""
    value: float | None = None
    if share.strip().lower() != "default":
        try:
            value = float(share)
        except ValueError:
            raise typer.BadParameter("a number above 0, or `default`", param_hint="W") from None
        if not (math.isfinite(value) and value > 0):
            raise typer.BadParameter("a number above 0, or `default`", param_hint="W")

    async def go() -> None:
        async with database(settings()) as pool:
            if await _known_user(pool, email) is None:
                raise Failure(f"NOT_FOUND: no user {email}")
            await directory.set_share(pool, email, value, actor())

    run(go())
    out.print(f"share of {email} set to {'the default' if value is None else f'{value:g}'}")


@users.command("max-priority")
def users_max_priority(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    priority: Annotated[str, typer.Argument(help="0..100, or `default` (50).")],
) -> None:
    """Let a user submit with a priority up to P (members may otherwise only lower theirs
    below the default, 50)."""
    value: int | None = None
    if priority.strip().lower() != "default":
        if not priority.strip().isdigit() or int(priority) > 100:
            raise typer.BadParameter("an integer 0..100, or `default`", param_hint="P")
        value = int(priority)

    async def go() -> None:
        async with database(settings()) as pool:
            if await _known_user(pool, email) is None:
                raise Failure(f"NOT_FOUND: no user {email}")
            await directory.set_max_priority(pool, email, value, actor())

    run(go())
    out.print(f"max priority of {email} set to {'the default' if value is None else value}")


@keys_app.command("issue")
def keys_issue(
    email: Annotated[str, typer.Argument(help="The user the key belongs to.")],
    label: Annotated[str | None, typer.Option(help="A note on where the key is used.")] = None,
) -> None:
    """Issue an API key. The plaintext key is shown once, alone on the last line of stdout."""

    async def go() -> directory.IssuedKey:
        async with database(settings()) as pool:
            if await directory.find_user(pool, email=email) is None:
                raise Failure(f"NOT_FOUND: no user {email}")
            return await directory.issue_key(pool, email, label, actor())

    issued = run(go())
    note(f"key {issued.id} issued to {email}; it is shown only now:")
    print(issued.key, flush=True)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (not the key).")]) -> None:
    """Revoke an API key; it stops working at once."""

    async def go() -> None:
        async with database(settings()) as pool:
            await directory.revoke_key(pool, key_id, actor())

    run(go())
    out.print(f"revoked key {key_id}")


@keys_app.command("list")
def keys_list() -> None:
    """List API keys: id, owner, label, issued and revoked times (never the keys or hashes)."""

    async def go() -> list[tuple[str, str, str | None, datetime, datetime | None]]:
        async with database(settings()) as pool:
            rows = await pool.fetch(QUERIES["keys"])
            return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    shown = table("id", "user", "label", "issued", "revoked")
    for key_id, email, label, created, revoked in run(go()):
        shown.add_row(key_id, email, label or "", _when(created), _when(revoked))
    out.print(shown)


@scheduler_app.command("pause")
def scheduler_pause(
    reason: Annotated[str | None, typer.Option(help="Why, for the history.")] = None,
) -> None:
    """Stop admissions on every replica (recorded in the log; running jobs are untouched)."""
    by = str(actor()["actor"])

    async def go() -> None:
        async with database(settings()) as pool:
            command = PauseScheduler(at=utcnow(), by=by, reason=reason)
            await run_command(pool, SCHEDULER, SCHEDULER_STREAM, command, actor())

    run(go())
    out.print("admissions paused")


@scheduler_app.command("resume")
def scheduler_resume() -> None:
    """Restart admissions (recorded in the log)."""
    by = str(actor()["actor"])

    async def go() -> None:
        async with database(settings()) as pool:
            command = ResumeScheduler(at=utcnow(), by=by)
            await run_command(pool, SCHEDULER, SCHEDULER_STREAM, command, actor())

    run(go())
    out.print("admissions resumed")
