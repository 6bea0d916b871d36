"""Client commands over the HTTP API: submit, jobs, show, cancel, requeue, queue, capacity.

Configured by FTQ_URL (default http://127.0.0.1:8000) and SFTQ_API_KEY, or --url/--key.
API errors print `CODE: message` from the error body and exit 1 (2 for a refused input).
`--json` prints the API's own JSON answer (the API's field names), one document on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.text import Text

from service.api.schemas import POLICY_HEADER
from service.cli.app import Failure, app, err, fail, note, out, run, table
from service.cli.eta_text import eta_words
from service.cli.http import DEFAULT_URL, Key, Url, api, error_text


def _read_body(path: Path) -> Any:
    try:
        text = typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text()
        return json.loads(text)
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror or exc}", 2) from None
    except json.JSONDecodeError as exc:
        raise Failure(f"{path} is not JSON: {exc}", 2) from None


AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]


def print_json(data: Any) -> None:
    """One JSON document on stdout, as the API sent it (no colours, no wrapping)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _pct(value: Any) -> str:
    return "" if value is None else f"{float(value):.0f}%"


def _read_bytes(path: Path) -> bytes:
    try:
        if str(path) == "-":
            return typer.get_binary_stream("stdin").read()
        return path.read_bytes()
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror or exc}", 2) from None


@app.command()
def submit(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE...",
            help="JSON body of POST /jobs, or a JSON array of them (`-`: stdin). "
            "Several files, or an array, go in one batch (POST /jobs/batch).",
        ),
    ],
    ndjson: Annotated[
        bool, typer.Option("--ndjson", help="FILE is NDJSON, one job per line: one batch.")
    ] = False,
    atomic: Annotated[
        bool, typer.Option(help="A batch is all or nothing: one bad item and none is created.")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            help="Retries with the same key return the same job (one job only; "
            "in a batch, give each item its own `idempotency_key`)."
        ),
    ] = None,
    after: Annotated[
        list[str] | None,
        typer.Option(
            "--after",
            metavar="ID",
            help="Wait for this job of yours to succeed first (repeatable; every job "
            "submitted waits). A pipeline: `ftq submit dpo.json --after <sft id>`.",
        ),
    ] = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """Submit a job: FILE is `{kind, fireworks_payload, gpu_count?, display_name?}`; or many
    jobs in one batch. Exit 2 for an unreadable file or a body the API refuses (every problem
    is printed); for a batch, 2 when an item was refused, 1 when one failed otherwise."""
    try:
        if ndjson:
            if len(files) != 1:
                raise Failure("--ndjson takes one FILE", 2)
            if after:
                raise Failure("--after is not for --ndjson: put `after` in the lines", 2)
            _submit_batch(url, key, None, _read_bytes(files[0]), atomic, as_json)
            return
        bodies = [_with_after(_read_body(path), after or []) for path in files]
    except Failure as exc:
        fail(exc.message, exc.code)
    if len(bodies) == 1 and isinstance(bodies[0], dict):
        _submit_one(url, key, bodies[0], idempotency_key, as_json)
        return
    if idempotency_key is not None:
        fail("--idempotency-key is for one job; give each batch item an `idempotency_key`", 2)
    items: list[Any] = []
    for body in bodies:
        items.extend(body if isinstance(body, list) else [body])
    _submit_batch(url, key, items, None, atomic, as_json)


def _with_after(body: Any, after: list[str]) -> Any:
    """`body` (a job or a list of jobs) with `after` added to each job's own."""
    if not after:
        return body
    if isinstance(body, list):
        return [_with_after(item, after) for item in body]
    if isinstance(body, dict):
        mine = body.get("after")
        named = [*mine, *after] if isinstance(mine, list) else list(after)
        return {**body, "after": named}
    return body  # not a job: the API says what is wrong with it


def _submit_one(
    url: str, key: str | None, body: Any, idempotency_key: str | None, as_json: bool
) -> None:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None

    async def go() -> Any:
        async with api(url, key) as client:
            return (await client.call("POST", "/jobs", body=body, headers=headers))[1]

    job = run(go())
    if as_json:
        print_json(job)
        return
    out.print(f"{job['id']} {job['state']}")


def _submit_batch(
    url: str,
    key: str | None,
    items: list[Any] | None,
    lines: bytes | None,
    atomic: bool,
    as_json: bool,
) -> None:
    """POST /jobs/batch with `items` (a JSON array) or `lines` (NDJSON); one line per item."""
    path = "/jobs/batch?atomic=true" if atomic else "/jobs/batch"

    async def go() -> Any:
        async with api(url, key) as client:
            if lines is not None:
                return (
                    await client.call(
                        "POST", path, content=lines, content_type="application/x-ndjson"
                    )
                )[1]
            return (await client.call("POST", path, body=items))[1]

    results = run(go())
    if as_json:
        print_json(results)
    worst = 0
    for result in results:
        job, error = result.get("job"), result.get("error")
        if job is None:
            worst = max(worst, 2 if result["status"] in (400, 413) else 1)
        if as_json:
            continue
        if job is not None:
            again = " (already submitted)" if result["status"] == 200 else ""
            out.print(f"{result['index']} {job['id']} {job['state']}{again}")
        else:
            text = error_text(result["status"], msgspec.json.encode({"error": error}))
            err.print(Text(f"{result['index']} {text}", style="red"))
    if worst:
        raise typer.Exit(worst)


@app.command()
def jobs(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only SFT, DPO or RFT jobs.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="At most this many (a page, with --all).")
    ] = 100,
    all_pages: Annotated[
        bool, typer.Option("--all", help="Every matching job: follow the pages to the end.")
    ] = False,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """List your jobs (admins: everyone's), newest first."""
    params = {"limit": str(limit)}
    params |= {k: v for k, v in (("state", state), ("kind", kind)) if v}

    async def go() -> list[Any]:
        async with api(url, key) as client:
            if not all_pages:
                return list((await client.call("GET", "/jobs", params=params))[1])
            return [job async for page in client.pages("/jobs", params) for job in page]

    listed = run(go())
    if as_json:
        print_json(listed)
        return
    shown = table("id", "kind", "state", "gpus", "user", "created", "progress", "name")
    for job in listed:
        shown.add_row(
            job["id"],
            job["kind"],
            job["state"] + (" (stuck)" if job.get("stuck") else ""),
            f"{job['gpu_count']} {job.get('gpu_type', '')}".strip(),
            job.get("user") or "",
            (job.get("created_at") or "")[:19].replace("T", " "),
            _pct(job.get("progress")),
            job.get("display_name") or "",
        )
    out.print(shown)


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """Show one job as pretty JSON (`--json`: plain, for programs)."""

    async def go() -> Any:
        async with api(url, key) as client:
            return (await client.call("GET", f"/jobs/{job_id}"))[1]

    job = run(go())
    if as_json:
        print_json(job)
        return
    out.print_json(data=job)


@app.command()
def cancel(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """Cancel a job (QUEUED at once; PROGRESS on Fireworks first)."""

    async def go() -> tuple[int, Any]:
        async with api(url, key) as client:
            return await client.call("DELETE", f"/jobs/{job_id}")

    status, result = run(go())
    if as_json:
        print_json(result)
    else:
        out.print(f"{result['id']} {result['state']}")
    if status == 202:
        note("Fireworks could not be reached; the cancel is recorded and will be carried out")


@app.command()
def requeue(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="A FAIL or CANCELLED job's id.")],
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """Submit a failed or cancelled job again: a new job, same payload, at the back of the
    queue (prints the new job's id and state)."""

    async def go() -> Any:
        async with api(url, key) as client:
            return (await client.call("POST", f"/jobs/{job_id}/requeue"))[1]

    job = run(go())
    if as_json:
        print_json(job)
        return
    out.print(f"{job['id']} {job['state']} (requeued from {job.get('requeued_from')})")


@app.command()
def queue(as_json: AsJson = False, url: Url = DEFAULT_URL, key: Key = None) -> None:
    """The QUEUED jobs in the policy's order (shown as the table's title), with why each
    one waits."""

    async def go() -> tuple[Any, str]:
        async with api(url, key) as client:
            body = (await client.call("GET", "/queue"))[1]
            return body, client.last_headers.get(POLICY_HEADER.lower(), "")

    entries, policy = run(go())
    if as_json:
        print_json(entries)
        return
    shown = table("pos", "id", "kind", "gpus", "user", "eta", "pending reason")
    if policy:
        shown.title = f"policy: {policy}"
    for entry in entries:
        user = entry.get("user") or ("you" if entry.get("mine") else "")
        shown.add_row(
            str(entry["queue_position"]),
            entry["id"],
            entry["kind"],
            f"{entry['gpu_count']} {entry.get('gpu_type', '')}".strip(),
            user,
            eta_words(entry.get("eta")),
            entry.get("pending_reason") or "",
        )
    out.print(shown)


@app.command()
def capacity(as_json: AsJson = False, url: Url = DEFAULT_URL, key: Key = None) -> None:
    """The account's GPUs: quota, in use, available, and where the figures come from."""

    async def go() -> Any:
        async with api(url, key) as client:
            return (await client.call("GET", "/capacity"))[1]

    figures = run(go())
    if as_json:
        print_json(figures)
        return
    shown = table("field", "value")
    for name, value in figures.items():
        shown.add_row(name, "" if value is None else str(value))
    out.print(shown)
