"""POST /jobs/batch: many submissions in one request, each checked on its own, the good ones
recorded together (one statement, one commit: `Submitter.submit_group`).

The body is a JSON array or NDJSON (`Content-Type: application/x-ndjson`) of POST /jobs
bodies, each with an optional `idempotency_key`. The answer is 200 with one result per item,
in input order: 201 and the new job, 200 and the earlier job for an idempotent repeat, or the
item's error. `?atomic=true`: all or nothing, a 400 naming every bad item by `index`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Final

import asyncpg
import msgspec
from litestar import Request, post
from litestar.params import QueryParameter

from events.domain.job_commands import SubmitJob
from service.api.auth import Caller, CallerDep
from service.api.common import RuntimeDep, errors, metadata, strict_convert
from service.api.errors import ApiError, ErrorBody, invalid
from service.api.intake import (
    IDEMPOTENCY_KEY,
    MAX_IDEMPOTENCY_KEY,
    check_after,
    check_payload,
    check_priorities,
    fingerprint,
    known_jobs,
    submit_command,
)
from service.api.limits import check_flood_limits
from service.api.runtime import Runtime
from service.api.schemas import JobSubmission, JobView
from service.api.views import JobRow, job_row, job_views, row_of_state
from service.sql import INTAKE

MAX_ITEMS: Final = 1000
MAX_BYTES: Final = 1024 * 1024
NDJSON: Final = "application/x-ndjson"
ATTEMPTS: Final = 3  # a concurrent submit taking one of our keys makes us look again
_KEY: Final = re.compile(IDEMPOTENCY_KEY)


class BatchResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One item's outcome: `status` 201 (created), 200 (idempotent repeat) or its error's."""

    index: int
    status: int
    job: JobView | None = None
    error: ErrorBody | None = None


class Checked(msgspec.Struct, frozen=True):
    """An item that passed its own checks."""

    index: int
    data: JobSubmission
    key: str | None
    fingerprint: str | None


def _too_large(message: str) -> ApiError:
    return ApiError(413, "PAYLOAD_TOO_LARGE", message)


def _line_error(line: int, problem: str) -> ApiError:
    detail = {"field": f"line {line}", "line": line, "problem": problem}
    return invalid(f"line {line}: {problem}", [detail])


def parse_items(body: bytes, ndjson: bool) -> list[Any]:
    """The batch's items, decoded but not yet checked (413 / 400 for the batch as a whole)."""
    if len(body) > MAX_BYTES:
        raise _too_large(f"a batch is at most {MAX_BYTES} bytes")
    items: list[Any] = []
    if ndjson:
        for number, text in enumerate(body.split(b"\n"), start=1):
            if not text.strip():
                continue
            try:
                items.append(msgspec.json.decode(text))
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                raise _line_error(number, "not valid JSON") from None
    else:
        try:
            items = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            line = _line_of(body, str(exc))
            raise _line_error(line, f"body is not valid JSON ({exc})") from None
        if not isinstance(items, list):
            raise invalid(
                f"the body must be a JSON array of jobs, or NDJSON with Content-Type {NDJSON}",
                [{"field": "body", "line": 1, "problem": "must be a JSON array"}],
            )
    if len(items) > MAX_ITEMS:
        raise _too_large(f"a batch is at most {MAX_ITEMS} jobs ({len(items)} given)")
    return items


_CHAR: Final = re.compile(r"\(byte (\d+)\)")


def _line_of(body: bytes, message: str) -> int:
    """The line msgspec's decode error points at (1 when it names no position)."""
    if "truncated" in message:
        return body.count(b"\n") + 1
    match = _CHAR.search(message)
    if match is None:
        return 1
    return body[: int(match.group(1))].count(b"\n") + 1


def check_item(raw: Any) -> tuple[JobSubmission, str | None]:
    """One item as a submission and its idempotency key, or its 400."""
    if not isinstance(raw, dict):
        raise invalid(
            "an item must be a JSON object", [{"field": "body", "problem": "not an object"}]
        )
    fields = dict(raw)
    key = fields.pop("idempotency_key", None)
    if key is not None and (
        not isinstance(key, str) or len(key) > MAX_IDEMPOTENCY_KEY or not _KEY.match(key)
    ):
        problem = f"must be printable ASCII, 1..{MAX_IDEMPOTENCY_KEY} characters"
        raise invalid(
            f"idempotency_key {problem}", [{"field": "idempotency_key", "problem": problem}]
        )
    return check_payload(strict_convert(fields, JobSubmission)), key


def _failure(index: int, exc: ApiError) -> BatchResult:
    error = ErrorBody(code=exc.code, message=exc.message, details=exc.details)
    return BatchResult(index=index, status=exc.status, error=error)


def _conflict(index: int, job_id: str) -> BatchResult:
    message = f"idempotency_key already used with another body (job {job_id})"
    return _failure(index, ApiError(409, "IDEMPOTENCY_CONFLICT", message))


class Outcome(msgspec.Struct):
    """A batch sorted out: what to record, what repeats an earlier job, what is refused."""

    new: list[tuple[int, SubmitJob]]
    repeats: list[tuple[int, JobRow | str]]  # str: the id of a job this batch creates
    refused: dict[int, BatchResult]
    waiting: dict[str, str | None]  # new job id -> why it waits for others (`after`), if so


async def _sort_out(
    runtime: Runtime, caller: Caller, checked: Sequence[Checked], at: datetime
) -> Outcome:
    """Each checked item as new, a repeat of an earlier job (same key, same body; within the
    batch too) or an idempotency conflict (same key, another body)."""
    keys = sorted({c.key for c in checked if c.key is not None})
    earlier: dict[str, JobRow] = {}
    if keys:
        records = await runtime.pool.fetch(INTAKE["jobs_by_idempotency_keys"], caller.user_id, keys)
        earlier = {r[-1]: job_row(tuple(r)[:-1]) for r in records}
    outcome = Outcome([], [], {}, {})
    known = await known_jobs(runtime, [c.data for c in checked if c.data.after])
    in_batch: dict[str, SubmitJob] = {}  # the first item with each key
    for item in checked:
        if item.key is not None and (row := earlier.get(item.key)) is not None:
            if row.request_fingerprint == item.fingerprint:
                outcome.repeats.append((item.index, row))
            else:
                outcome.refused[item.index] = _conflict(item.index, row.id)
            continue
        if item.key is not None and item.key in in_batch:
            first = in_batch[item.key]
            if first.request_fingerprint == item.fingerprint:
                outcome.repeats.append((item.index, first.job_id))
            else:
                outcome.refused[item.index] = _conflict(item.index, first.job_id)
            continue
        try:
            waiting = check_after(item.data, caller, known) if item.data.after else None
        except ApiError as exc:
            outcome.refused[item.index] = _failure(item.index, exc)
            continue
        command = submit_command(item.data, caller, at, item.key, runtime.settings.default_gpu_type)
        outcome.new.append((item.index, command))
        outcome.waiting[command.job_id] = waiting
        if item.key is not None:
            in_batch[item.key] = command
    return outcome


def _refuse_all(bad: Sequence[BatchResult], total: int) -> ApiError:
    details = [
        {
            "index": r.index,
            "status": r.status,
            "code": r.error.code if r.error else "",
            "message": r.error.message if r.error else "",
            "details": r.error.details if r.error else [],
        }
        for r in sorted(bad, key=lambda r: r.index)
    ]
    message = f"{len(bad)} of {total} items are invalid; nothing was created (atomic)"
    return invalid(message, details)


@post(
    "/jobs/batch",
    status_code=200,
    request_max_body_size=MAX_BYTES,
    summary="Submit many jobs",
    responses=errors(400, 413, 429),
    description="A JSON array (or NDJSON with `Content-Type: application/x-ndjson`) of at most "
    "1,000 `POST /jobs` bodies, each with an optional `idempotency_key`. 200 with "
    "`[{index, status, job | error}]` in input order; the good items are recorded together. "
    "`?atomic=true`: all or nothing (400 naming every bad item by `index`).",
)
async def submit_batch(
    request: Request[Any, Any, Any],
    caller: CallerDep,
    runtime: RuntimeDep,
    atomic: Annotated[bool, QueryParameter(description="all or nothing")] = False,
) -> list[BatchResult]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    items = parse_items(await request.body(), media_type == NDJSON)
    results: dict[int, BatchResult] = {}
    checked: list[Checked] = []
    for index, raw in enumerate(items):
        try:
            data, key = check_item(raw)
        except ApiError as exc:
            results[index] = _failure(index, exc)
            continue
        checked.append(Checked(index, data, key, None if key is None else fingerprint(data)))
    await check_priorities(runtime, caller, [c.data for c in checked])
    for attempt in range(1, ATTEMPTS + 1):
        outcome = await _sort_out(runtime, caller, checked, runtime.clock())
        if atomic and (results or outcome.refused):
            raise _refuse_all([*results.values(), *outcome.refused.values()], len(items))
        if attempt == 1:
            await check_flood_limits(runtime, caller, len(outcome.new))
        try:
            states = await runtime.submitter.submit_group(
                [command for _, command in outcome.new], metadata(caller)
            )
        except asyncpg.UniqueViolationError:
            if attempt == ATTEMPTS:
                raise
            continue  # a concurrent submit took one of the keys: sort the batch out again
        break
    if outcome.new and runtime.loop is not None:
        runtime.loop.wake()
    created = {state.job_id: row_of_state(state) for state in states}
    rows: dict[int, tuple[int, JobRow]] = {}
    for (index, _), state in zip(outcome.new, states, strict=True):
        rows[index] = (201, created[state.job_id])
    for index, row in outcome.repeats:
        rows[index] = (200, created[row] if isinstance(row, str) else row)
    ordered = sorted(rows)
    views = await job_views(runtime, [rows[i][1] for i in ordered], outcome.waiting)
    for index, view in zip(ordered, views, strict=True):
        results[index] = BatchResult(index=index, status=rows[index][0], job=view)
    results |= outcome.refused
    return [results[i] for i in range(len(items))]


BATCH_ROUTES: Final = [submit_batch]
