"""Small pieces every route module shares: the runtime dependency, command metadata, the
OpenAPI description of error responses, and path-id checks."""

from __future__ import annotations

import uuid
from typing import Any, Final, TypeVar

import msgspec
import structlog
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec

from service.api.auth import Caller
from service.api.errors import ERROR_DESCRIPTIONS, ErrorResponse, field_detail, invalid, not_found
from service.api.runtime import Runtime, runtime_of

T = TypeVar("T")


def provide_runtime(state: State) -> Runtime:
    return runtime_of(state)


RUNTIME: Final = {"runtime": Provide(provide_runtime, sync_to_thread=False)}
RuntimeDep = NamedDependency[Runtime]


def metadata(caller: Caller | None) -> dict[str, Any]:
    """What every recorded event carries about who asked and in which request."""
    out: dict[str, Any] = {"actor": caller.email if caller else "ftq"}
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        out["request_id"] = request_id
    return out


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for the given error statuses (all in the error shape)."""
    return {
        status: ResponseSpec(
            data_container=ErrorResponse,
            description=ERROR_DESCRIPTIONS.get(status, "error"),
            generate_examples=False,
        )
        for status in sorted({*statuses, 400, 401, 404})
    }


def ok(status: int, container: Any, description: str) -> dict[int, ResponseSpec]:
    """An extra documented success answer (e.g. 200 on an idempotent retry, 202)."""
    return {status: ResponseSpec(data_container=container, description=description)}


async def strict_body(request: Request[Any, Any, Any], type_: type[T]) -> T:
    """The body decoded strictly (Litestar's own decoding coerces "4" to 4; the contract
    wants types checked), with each problem as a `details` entry."""
    try:
        raw = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        raise invalid(
            "body is not valid JSON", [{"field": "body", "problem": "invalid JSON"}]
        ) from None
    return strict_convert(raw, type_)


def _int_fields(type_: Any) -> frozenset[str]:
    """The fields of a struct that take an integer (alone or or-null)."""
    info = msgspec.inspect.type_info(type_)
    names = set()
    for field in getattr(info, "fields", ()):
        kind = field.type
        members = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
        for member in members:
            inner = member.type if isinstance(member, msgspec.inspect.Metadata) else member
            if isinstance(inner, msgspec.inspect.IntType):
                names.add(field.encode_name)
    return frozenset(names)


def _integral_floats_as_ints(raw: Any, type_: Any) -> Any:
    """`4.0` is the integer 4 in JSON (and in JSON Schema, so in the OpenAPI document): an
    integer field takes it. Top-level fields only; payloads pass through unchanged."""
    if (
        not isinstance(raw, dict)
        or not isinstance(type_, type)
        or not issubclass(type_, msgspec.Struct)
    ):
        return raw
    fields = _int_fields(type_)
    return {
        k: int(v) if k in fields and isinstance(v, float) and v.is_integer() else v
        for k, v in raw.items()
    }


def strict_convert(raw: Any, type_: type[T]) -> T:
    """Decoded JSON as `type_`, strictly, each problem a `details` entry (400)."""
    if problem := text_problem(raw):
        raise invalid(f"invalid body: {problem['problem']}", [problem])
    try:
        return msgspec.convert(_integral_floats_as_ints(raw, type_), type_)
    except msgspec.ValidationError as exc:
        detail = field_detail("", str(exc))
        raise invalid(f"{detail['field']} {detail['problem']}", [detail]) from None


async def optional_body(request: Request[Any, Any, Any], type_: type[T]) -> T | None:
    """Like `strict_body`, for routes whose body may be left out (or be `null`)."""
    raw = (await request.body()).strip()
    if not raw or raw == b"null":
        return None
    return await strict_body(request, type_)


MAX_DEPTH: Final = 64


def text_problem(value: Any, path: str = "", depth: int = 0) -> dict[str, str] | None:
    """The first string (or key) PostgreSQL cannot store (NUL, an unpaired surrogate), or
    nesting deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        return {"field": path or "body", "problem": f"nested deeper than {MAX_DEPTH} levels"}
    if isinstance(value, str):
        if "\x00" in value:
            return {"field": path or "body", "problem": "must not contain NUL characters"}
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return {"field": path or "body", "problem": "must be valid UTF-8 text"}
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            problem = text_problem(key, where, depth) or text_problem(item, where, depth + 1)
            if problem:
                return problem
    if isinstance(value, list):
        for i, item in enumerate(value):
            if problem := text_problem(item, f"{path}.{i}" if path else str(i), depth + 1):
                return problem
    return None


def checked_uuid(value: str, what: str = "job") -> str:
    """`value` as a canonical uuid string; anything else is an unknown `what` (404)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise not_found(f"no such {what}") from None
