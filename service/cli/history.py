"""`ftq replay` and `ftq audit`: fold the event log from position 0, straight from the
database, with the same `evolve` code the service uses."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import asyncpg
import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from events.store.log import Cursor, RecordedEvent, read_all
from service.cli.app import Failure, app, database, err, fail, note, out, run, table
from service.cli.app import settings_or_exit as settings
from service.sql import QUERIES

BATCH: Final = 5000
BAR_FROM: Final = 20_000  # events; shorter reads finish before a bar is worth drawing
_encoder: Final = msgspec.json.Encoder()


class ExportLine(msgspec.Struct):
    """One NDJSON line of `--export`: every column of the event row, data and metadata exact."""

    position: int
    transaction_id: int
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    recorded_at: datetime
    metadata: msgspec.Raw
    data: msgspec.Raw


async def read_log(pool: asyncpg.Pool) -> list[RecordedEvent]:
    """The whole log in read order, in batches; a progress bar on a terminal's stderr."""
    async with pool.acquire() as conn:
        if not await conn.fetchval(QUERIES["cli_log_exists"]):
            raise Failure("the database has no event log yet: run `ftq migrate`")
        total = int(await conn.fetchval(QUERIES["cli_log_size"]))
        bar = Progress(
            TextColumn("reading the log"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not (sys.stderr.isatty() and total >= BAR_FROM),
            transient=True,
        )
        rows: list[RecordedEvent] = []
        with bar:
            task = bar.add_task("log", total=total)
            after = Cursor.START
            while batch := await read_all(conn, after, BATCH):
                rows.extend(batch)
                after = batch[-1].cursor
                bar.update(task, completed=len(rows))
        return rows


def _kept(until_position: int | None, at: datetime | None) -> Callable[[RecordedEvent], bool]:
    def keep(row: RecordedEvent) -> bool:
        late = until_position is not None and row.position > until_position
        return not late and not (at is not None and row.recorded_at > at)

    return keep


def export(rows: list[RecordedEvent], path: Path, *, redact: bool = False) -> None:
    """Write `rows` as NDJSON, mode 0600; the file holds payload secrets (sealed ones, and
    plain ones of old events unless `redact`): protect it like the database."""
    from service.secrets.migrate_log import redact_data  # noqa: PLC0415

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file was there before, with a wider mode
    with os.fdopen(fd, "wb") as file:
        for r in rows:
            line = ExportLine(
                position=r.position,
                transaction_id=r.transaction_id,
                stream_id=r.stream_id,
                stream_version=r.stream_version,
                type=r.type,
                schema_version=r.schema_version,
                recorded_at=r.recorded_at,
                metadata=msgspec.Raw(_encoder.encode(r.metadata)),
                data=msgspec.Raw(redact_data(r.type, r.data) if redact else r.data),
            )
            file.write(_encoder.encode(line) + b"\n")


def _table(view: dict[str, object]) -> None:
    jobs = table("id", "user", "kind", "state", "gpus", "created", "progress", title="jobs")
    for job in view["jobs"]:  # type: ignore[attr-defined]
        progress = "" if job["progress"] is None else f"{job['progress']:.0f}%"
        created = (job["created_at"] or "")[:19].replace("T", " ")
        row = (job["id"], job["user"], job["kind"], job["state"], str(job["gpu_count"]))
        jobs.add_row(*row, created, progress)
    users = table("email", "role", "cap", "id", title="users")
    for user in view["users"]:  # type: ignore[attr-defined]
        cap = "" if user["cap"] is None else str(user["cap"])
        users.add_row(user["email"], user["role"], cap, user["id"])
    out.print(jobs)
    out.print(users)
    out.print(f"as of position {view['position']}")


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at: not an ISO 8601 time: {text!r}", 2)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@app.command()
def replay(
    until_position: Annotated[
        int | None, typer.Option(help="Only events at or below this position.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(help="Only events recorded at or before this time (ISO 8601; UTC if naive)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
    export_to: Annotated[
        Path | None,
        typer.Option(
            "--export",
            metavar="FILE",
            help="Write the events (all, or those kept by --until-position/--at) as NDJSON, "
            "one per line in read order, exactly as stored "
            "(a backup: it contains job payload secrets; protect it like the database).",
        ),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the live projections against the log.")
    ] = False,
    redact: Annotated[
        bool,
        typer.Option(
            "--redact",
            help="With --export: replace every payload secret stored in plain text (events "
            "older than sealing) by a redacted marker; for `ftq import` into a fresh database.",
        ),
    ] = False,
) -> None:
    """Rebuild jobs and users from the event log, as of now or an earlier point."""
    from projections.rebuild import verify as verify_projections  # noqa: PLC0415
    from projections.replay import replay as fold  # noqa: PLC0415
    from projections.replay import to_json_view  # noqa: PLC0415

    if until_position is not None and at is not None:
        fail("give --until-position or --at, not both", 2)
    until_time = _parse_time(at)

    async def go() -> tuple[list[RecordedEvent], list[str]]:
        async with database(settings(), migrated=False) as pool:
            rows = [r for r in await read_log(pool) if _kept(until_position, until_time)(r)]
            differences: list[str] = []
            if verify:
                async with pool.acquire() as conn:
                    differences = await verify_projections(conn)
            return rows, differences

    rows, differences = run(go())
    if redact and export_to is None:
        fail("--redact goes with --export FILE", 2)
    if export_to is not None:
        export(rows, export_to, redact=redact)
        what = "no plain secrets" if redact else "contains payload secrets"
        note(f"exported {len(rows)} events to {export_to} ({what})")
    if verify:
        if differences:
            fail(f"projections differ from the log: {differences[0]}")
        note("projections match the log")
    if as_json:
        print(json.dumps(to_json_view(fold(rows)), indent=2))
    elif export_to is None and not verify:
        _table(to_json_view(fold(rows)))


@app.command()
def audit(
    default_cap: Annotated[
        int | None, typer.Option(help="Cap for users without their own [default: FTQ_USER_CAP].")
    ] = None,
) -> None:
    """Check every invariant at every position of the log; exit 0 only when none is broken."""
    from projections.audit import audit as check  # noqa: PLC0415

    config = settings()
    cap = config.default_cap if default_cap is None else default_cap

    async def go() -> list[RecordedEvent]:
        async with database(config, migrated=False) as pool:
            return await read_log(pool)

    rows = run(go())
    violations = check(rows, default_cap=cap)
    if not violations:
        out.print(f"{len(rows)} events checked: no invariant broken")
        return
    shown = table("invariant", "positions", "job", "message", title="violations")
    for v in violations:
        positions = ", ".join(str(p) for p in v.positions)
        shown.add_row(v.invariant, positions, v.job_id or "", v.message)
    out.print(shown)
    fail(f"{len(violations)} violation(s) in {len(rows)} events")
