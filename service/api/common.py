"""Small pieces every route module shares: the runtime dependency, command metadata, the
OpenAPI description of error responses, and path-id checks."""

from __future__ import annotations

import uuid
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec
import structlog
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.dto import AbstractDTO
from litestar.openapi.datastructures import ResponseSpec
from litestar.typing import FieldDefinition

from service.api.auth import Caller
from service.api.errors import ERROR_DESCRIPTIONS, ErrorResponse, field_detail, invalid, not_found
from service.api.messages import json_problem
from service.api.runtime import Runtime, runtime_of

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto._backend import DTOBackend
    from litestar.dto.data_structures import DTOFieldDefinition
    from litestar.openapi.spec import Reference, Schema

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


class StrictDTO(AbstractDTO[T]):
    """`data` decoded by one strict msgspec decode straight into `T` (a Struct), then
    checked for text PostgreSQL cannot store; failures are 400s in the contract's shape,
    like `strict_body`'s. Use as `dto=StrictDTO[T], return_dto=None` on a route with
    `data: JSONBody[T]`: Litestar's own path would decode the JSON to Python objects and
    convert them leniently ("4" to 4), and `strict_body` after it would do both again; this
    is the one decode (the OpenAPI document is the same: the schema of `T`)."""

    @classmethod
    def create_for_field_definition(
        cls,
        field_definition: FieldDefinition,
        handler_id: str,
        backend_cls: type[DTOBackend] | None = None,
    ) -> None:
        """No transfer model: `decode_bytes` decodes into `T` itself."""

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        annotation = FieldDefinition.from_annotation(
            cls.model_type, kwarg_definition=field_definition.kwarg_definition
        )
        return schema_creator.for_field_definition(annotation)

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()  # unused: no transfer model

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    def decode_bytes(self, value: bytes) -> T:
        return decode_strict(value, self.model_type)


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    if (decoder := _DECODERS.get(type_)) is None:
        decoder = _DECODERS[type_] = msgspec.json.Decoder(type_, strict=True)
    return decoder


def decode_strict(raw: bytes, type_: type[T]) -> T:
    """`raw` decoded strictly into the Struct `type_` (see `StrictDTO`)."""
    try:
        data: T = _decoder(type_).decode(raw)
    except msgspec.ValidationError as exc:
        detail = field_detail("", str(exc))
        raise invalid(f"{detail['field']} {detail['problem']}", [detail]) from None
    except msgspec.DecodeError as exc:  # worded as Litestar's own decoding had it
        if not raw.strip():
            raise invalid("body required", [{"field": "body", "problem": "required"}]) from None
        words = json_problem(str(exc)) or "the body is not valid JSON"
        raise invalid(f"body: {words}", [{"field": "body", "problem": words}]) from None
    for name in type_.__struct_fields__:  # type: ignore[attr-defined]
        if problem := text_problem(getattr(data, name), name, 1):
            raise invalid(f"invalid body: {problem['problem']}", [problem])
    return data


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


def strict_convert(raw: Any, type_: type[T]) -> T:
    """Decoded JSON as `type_`, strictly, each problem a `details` entry (400)."""
    if problem := text_problem(raw):
        raise invalid(f"invalid body: {problem['problem']}", [problem])
    try:
        return msgspec.convert(raw, type_)
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
