"""`ftq usage`: GPU-hour accounting over the HTTP API (GET /usage)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from service.cli.app import app, out, run, table
from service.cli.http import DEFAULT_URL, Key, Url, api


class GroupBy(StrEnum):
    user = "user"
    kind = "kind"
    day = "day"


def _hours(seconds: Any) -> str:
    return f"{float(seconds) / 3600:.2f}"


def _maybe(value: Any, fmt: str) -> str:
    return "" if value is None else format(float(value), fmt)


@app.command()
def usage(
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Start (RFC 3339 or YYYY-MM-DD, UTC); default: all time."),
    ] = None,
    to: Annotated[str | None, typer.Option(help="End (exclusive); default: now.")] = None,
    group: Annotated[GroupBy, typer.Option(help="Group by user, kind or day.")] = GroupBy.user,
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON answer.")] = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """GPU-hours used (gpu_count x admitted -> ended), with Fireworks' own figures when it
    reported them. Members see their own usage, admins everyone's."""
    params = {"group": group.value}
    if from_ is not None:
        params["from"] = from_
    if to is not None:
        params["to"] = to

    async def go() -> Any:
        async with api(url, key) as client:
            return (await client.call("GET", "/usage", params=params))[1]

    rows = run(go())
    if as_json:
        out.print_json(data=rows)
        return
    shown = table(group.value, "jobs", "GPU-hours", "accelerator-hours", "est. cost")
    for row in rows:
        accelerator = row.get("accelerator_seconds")
        shown.add_row(
            str(row["group"]),
            str(row["jobs"]),
            _hours(row["gpu_seconds"]),
            "" if accelerator is None else _hours(accelerator),
            _maybe(row.get("estimated_cost"), ".2f"),
        )
    out.print(shown)
