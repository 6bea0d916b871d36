"""`ftq secrets ...` (payload secrets at rest: shred, rotate, report, new-key) and
`ftq import` (a `--export`ed log into a fresh database). Straight against the database."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from service.cli.app import Failure, actor, app, database, fail, note, out, run, table
from service.cli.app import settings_or_exit as settings
from service.secrets.keys import ENV, ENV_OLD, MasterKey, keyring_of, new_key_text, parse_key
from service.settings import Settings, SettingsError

secrets_app = typer.Typer(help="Payload secrets at rest: shred, rotate the master key, report.")
app.add_typer(secrets_app, name="secrets", no_args_is_help=True)


@secrets_app.command("shred")
def shred(job_id: Annotated[str, typer.Argument(help="The ended job's id.")]) -> None:
    """Delete an ended job's data key now: its secrets in the log are gone for good."""
    from service.secrets.shred import shred as shred_job  # noqa: PLC0415

    who = actor()

    async def go() -> None:
        async with database(settings()) as pool:
            await shred_job(pool, job_id, str(who["actor"]), who)

    run(go())
    out.print(f"shredded the secrets of {job_id}")


def _old_key(config: Settings) -> MasterKey:
    text = config.secret_key_old or ""
    name = ENV_OLD
    if not text:
        name = "the old key (stdin)"
        if sys.stdin.isatty():
            text = getpass.getpass("old master key (base64): ")
        else:
            text = sys.stdin.readline()
    if not text.strip():
        raise Failure(f"give the old master key on stdin or in {ENV_OLD}", 2)
    try:
        return parse_key(text, name)
    except SettingsError as exc:
        raise Failure(str(exc), 2) from None


@secrets_app.command("rotate")
def rotate() -> None:
    """Re-wrap every data key under the master key (FTQ_SECRET_KEY) from the old one (stdin,
    or FTQ_SECRET_KEY_OLD). Resumable (run it again) and safe while ftq serves; see README."""
    from service.secrets.rotate import rotate as rewrap  # noqa: PLC0415
    from service.secrets.rotate import rotate_webhooks  # noqa: PLC0415

    config = settings()
    try:
        new = keyring_of(config, warn=False).current
    except SettingsError as exc:
        fail(str(exc), 2)
    try:
        old = _old_key(config)
    except Failure as exc:
        fail(exc.message, 2)

    async def go() -> tuple[object, object]:
        async with database(config) as pool:
            return await rewrap(pool, new, [old]), await rotate_webhooks(pool, new, [old])

    keys, hooks = run(go())
    done, webhooks = msgspec.to_builtins(keys), msgspec.to_builtins(hooks)
    out.print(
        f"re-wrapped {done['rewrapped']} data keys under {new.kid} "
        f"({done['gone']} shredded meanwhile); re-sealed {webhooks['resealed']} webhook "
        f"secrets ({webhooks['already']} done before)"
    )
    if done["unknown"] or webhooks["unknown"]:
        fail(
            f"left as they are (under other master keys): data keys {done['unknown']}, "
            f"webhook secrets {webhooks['unknown']}",
            2,
        )


@secrets_app.command("report")
def report(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Which events hold payload secrets in plain text (older than sealing), and the sealed
    jobs' data keys. Exits 1 when plain secrets remain (README: "Old events")."""
    from service.secrets.report import report as build  # noqa: PLC0415

    async def go() -> object:
        async with database(settings()) as pool:
            return await build(pool)

    result = msgspec.to_builtins(run(go()))
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        shown = table("position", "id", "state", "fields", title="events with plain secrets")
        for p in result["plain"]:
            shown.add_row(str(p["position"]), p["job_id"], p["state"] or "", ", ".join(p["fields"]))
        out.print(shown)
        out.print(
            f"{result['submitted']} jobs submitted; {len(result['plain'])} hold plain secrets; "
            f"{result['sealed']} sealed ({result['sealed_without_key']} shredded); "
            f"data keys by master key: {result['keys_by_master'] or 'none'}"
        )
    if result["plain"]:
        raise typer.Exit(1)


@secrets_app.command("new-key")
def new_key() -> None:
    """Print a new random master key (base64 of 32 bytes) for FTQ_SECRET_KEY."""
    out.print(new_key_text())
    note(f"set it as {ENV} on every replica; keep it out of git")


@app.command("import")
def import_log(
    file: Annotated[Path, typer.Argument(help="An `ftq replay --export` NDJSON file.")],
    keys_from: Annotated[
        str | None,
        typer.Option(
            help="The old database's URL: copy the data keys of the imported jobs from it "
            "(sealed secrets of jobs not yet shredded stay usable)."
        ),
    ] = None,
) -> None:
    """Load an exported log into a fresh database (DATABASE_URL) and rebuild the projections."""
    from service.secrets.migrate_log import ImportRefused  # noqa: PLC0415
    from service.secrets.migrate_log import import_log as load  # noqa: PLC0415

    if not file.is_file():
        fail(f"no such file: {file}", 2)

    async def go() -> object:
        async with database(settings()) as pool:
            try:
                return await load(pool, file, keys_from)
            except ImportRefused as exc:
                raise Failure(str(exc)) from None

    done = msgspec.to_builtins(run(go()))
    out.print(f"imported {done['events']} events ({done['keys']} data keys); projections rebuilt")
