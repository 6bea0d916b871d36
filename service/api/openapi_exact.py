"""What the generated OpenAPI document leaves out, put in, so that it says what the server
does (issue 13 item 16): `additionalProperties: false` on every body that refuses unknown
fields, the per-kind payload rules as a union discriminated by `kind`, optional bodies
optional, and links from `POST /jobs` to the routes that take the new job's id.

Applied once to the document Litestar builds (`ExactOpenAPIPlugin`), so the route and
struct modules stay as they are."""

from __future__ import annotations

import copy
import inspect
from typing import Any, Final

import msgspec
from litestar._openapi.plugin import OpenAPIPlugin

from service.api import schemas as api_schemas
from service.api.batch import MAX_ITEMS, NDJSON
from service.api.intake import IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY
from service.api.validation import (
    _INTEGERS,
    _NUMBERS,
    _OBJECTS,
    _STRINGS,
)
from service.api.webhooks import URL, WebhookRequest

Doc = dict[str, Any]

NO_NUL: Final = "^[^\\x00]*$"  # PostgreSQL stores no NUL in text or jsonb: refused (400)
# Something besides what Python's str.strip() takes away (the server's "must not be empty").
SPACES: Final = (  # what Python's `\s` and str.isspace() take for whitespace, spelled out
    "\\t-\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NOT_ONLY_SPACE: Final = f"[^{SPACES}]"
STORABLE: Final = "#/components/schemas/StorableJson"
STORABLE_JSON: Final = {  # any JSON value whose strings and keys PostgreSQL can store
    "title": "StorableJson",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": STORABLE}},
        {
            "type": "object",
            "additionalProperties": {"$ref": STORABLE},
            "propertyNames": {"pattern": NO_NUL},
        },
    ],
}


OPTIONAL_BODIES: Final = (
    ("/admin/users/{user_id}/keys", "post"),
    ("/admin/scheduler/pause", "post"),
)
JOB_LINKS: Final = {  # link name -> (path, method) of a route taking the job's id as `id`
    "GetJob": ("/jobs/{id}", "get"),
    "CancelJob": ("/jobs/{id}", "delete"),
    "JobEvents": ("/jobs/{id}/events", "get"),
    "RequeueJob": ("/jobs/{id}/requeue", "post"),
}


def _strict_structs() -> dict[str, type[msgspec.Struct]]:
    """The request structs that refuse unknown fields (`forbid_unknown_fields=True`)."""
    return {
        name: value
        for name, value in [*vars(api_schemas).items(), ("WebhookRequest", WebhookRequest)]
        if inspect.isclass(value)
        and issubclass(value, msgspec.Struct)
        and value.__struct_config__.forbid_unknown_fields
    }


def _webhook_request(schemas: Doc) -> None:
    """The URL's form, and `user` not with `all: true` (checked by the route)."""
    schema = schemas.get("WebhookRequest")
    if schema is None:
        return
    schema["properties"]["url"]["pattern"] = URL
    schema["not"] = {
        "required": ["user", "all"],
        "properties": {"user": {"type": "string"}, "all": {"const": True}},
    }


_BOUNDS: Final = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
    "min_length": "minLength",
    "max_length": "maxLength",
}


def _bounds(info: Any) -> dict[str, Any]:
    """The numeric and length bounds msgspec enforces on a field (Litestar drops the ones
    that are 0, such as `priority >= 0`)."""
    if isinstance(info, msgspec.inspect.Metadata):
        return _bounds(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        out: dict[str, Any] = {}
        for member in info.types:
            out |= _bounds(member)
        return out
    names: tuple[str, ...]
    if isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        names = ("ge", "le", "gt", "lt")
    elif isinstance(info, msgspec.inspect.StrType | msgspec.inspect.ListType):
        names = ("min_length", "max_length")
    else:
        return {}
    key = "items" if isinstance(info, msgspec.inspect.ListType) else None
    found = {_BOUNDS[n]: getattr(info, n) for n in names if getattr(info, n) is not None}
    if isinstance(info, msgspec.inspect.StrType) and info.pattern:
        found["pattern"] = python_pattern(info.pattern)
    if key and found:
        found = {k.replace("Length", "Items"): v for k, v in found.items()}
    return found


def python_pattern(pattern: str) -> str:
    """A Python regex as the document's (ECMA-262) regex: `\\s` inside a character class
    spelled out as Python's whitespace, which ECMA's `\\s` is not (it leaves out \\x1c-\\x1f)."""
    return pattern.replace("\\s", SPACES)


def _exact_fields(schema: Doc, struct: type[msgspec.Struct]) -> None:
    info = msgspec.inspect.type_info(struct)
    properties = schema.get("properties", {})
    for field in getattr(info, "fields", ()):
        if field.encode_name in properties:
            properties[field.encode_name] |= _bounds(field.type)


def _storable_object() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": {"$ref": STORABLE},
        "propertyNames": {"pattern": NO_NUL},
    }


def _payload_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in _STRINGS:  # a string, and (but a Jinja template) not only whitespace
        fields[key] = {"type": "string", "pattern": NO_NUL}
        if key != "jinjaTemplate":
            fields[key]["allOf"] = [{"pattern": NOT_ONLY_SPACE}]
    fields |= {key: _storable_object() for key in _OBJECTS}
    fields |= {key: {"type": "integer"} for key in _INTEGERS}
    fields |= {key: {"type": "number"} for key in _NUMBERS}
    return fields


def payload_schemas() -> dict[str, Any]:
    """`fireworks_payload` per kind, as `service.api.validation.payload_problems` checks it
    (other Fireworks fields pass through)."""
    fields = _payload_fields()
    training = {**_storable_object(), "properties": fields}
    base = {
        **_storable_object(),
        "properties": {**fields, "trainingConfig": training},
        "required": ["dataset"],
    }
    one_model = {
        "oneOf": [
            {"required": ["baseModel"], "not": {"required": ["warmStartFrom"]}},
            {"required": ["warmStartFrom"], "not": {"required": ["baseModel"]}},
        ],
        "description": "exactly one of baseModel and warmStartFrom",
    }
    return {
        "SFT": {"allOf": [base, one_model]},
        "DPO": {
            "allOf": [
                base,
                {
                    "anyOf": [
                        {"required": ["warmStartFrom"]},
                        {
                            "required": ["trainingConfig"],
                            "properties": {"trainingConfig": {"allOf": [training, one_model]}},
                        },
                    ],
                    "description": "warmStartFrom, or trainingConfig with exactly one of "
                    "baseModel and warmStartFrom",
                },
            ]
        },
        "RFT": {"allOf": [base, {"required": ["evaluator"]}]},
    }


def _job_ids(prop: Doc) -> None:
    """`after`: a list of job ids (uuids), as the submit checks."""
    for member in [prop, *prop.get("oneOf", [])]:
        if member.get("type") == "array" and isinstance(member.get("items"), dict):
            member["items"]["format"] = "uuid"


def _per_kind(schemas: Doc) -> None:
    base = schemas.get("JobSubmission")
    if base is None or "oneOf" in base:
        return
    if "after" in base.get("properties", {}):
        _job_ids(base["properties"]["after"])
    refs = {}
    for kind, payload in payload_schemas().items():
        variant = copy.deepcopy(base)
        variant["title"] = f"{kind}JobSubmission"
        variant["properties"]["kind"] = {"type": "string", "enum": [kind]}
        variant["properties"]["fireworks_payload"] = payload
        variant["additionalProperties"] = False
        schemas[variant["title"]] = variant
        refs[kind] = f"#/components/schemas/{variant['title']}"
    schemas["JobSubmission"] = _by_kind("JobSubmission", refs)


def _by_kind(title: str, refs: dict[str, str]) -> Doc:
    """One of `refs` (kind -> schema ref), told apart by `kind`."""
    return {
        "title": title,
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "kind", "mapping": refs},
    }


BATCH: Final = ("/jobs/batch", "post")


def _batch_body(schemas: Doc, paths: Doc) -> None:
    """`POST /jobs/batch` reads its body by hand (a JSON array or NDJSON): its items are
    `POST /jobs` bodies, each with an optional `idempotency_key`."""
    operation = paths.get(BATCH[0], {}).get(BATCH[1])
    union = schemas.get("JobSubmission", {})
    if operation is None or "discriminator" not in union:
        return
    refs = {}
    for kind, ref in union["discriminator"]["mapping"].items():
        item = copy.deepcopy(schemas[ref.rsplit("/", 1)[1]])
        item["title"] = f"{kind}BatchItem"
        item["properties"]["idempotency_key"] = {
            "type": "string",
            "maxLength": MAX_IDEMPOTENCY_KEY,
            "pattern": IDEMPOTENCY_KEY,
            "description": "as the Idempotency-Key header of POST /jobs",
        }
        schemas[item["title"]] = item
        refs[kind] = f"#/components/schemas/{item['title']}"
    schemas["BatchItem"] = _by_kind("BatchItem", refs)
    array = {
        "type": "array",
        "maxItems": MAX_ITEMS,
        "items": {"$ref": "#/components/schemas/BatchItem"},
    }
    operation["requestBody"] = {
        "required": True,
        "description": f"A JSON array (or NDJSON, `Content-Type: {NDJSON}`, one item a line) "
        f"of at most {MAX_ITEMS} items. Without `atomic`, an item that is not a valid "
        "`BatchItem` is answered in its own result (its error); with `atomic=true`, it "
        "refuses the batch (400).",
        "content": {"application/json": {"schema": array}},
    }


def _optional_bodies(paths: Doc) -> None:
    for path, method in OPTIONAL_BODIES:
        body = paths.get(path, {}).get(method, {}).get("requestBody")
        if body is None:
            continue
        body["required"] = False  # no body at all; a JSON `null` is taken too (oneOf)


def _links(paths: Doc) -> None:
    post = paths.get("/jobs", {}).get("post")
    if post is None:
        return
    links = {}
    for name, (path, method) in JOB_LINKS.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None and "operationId" in operation:
            links[name] = {
                "operationId": operation["operationId"],
                "parameters": {"id": "$response.body#/id"},
            }
    for status in ("200", "201"):
        if status in post.get("responses", {}):
            post["responses"][status]["links"] = links


def _no_nul_strings(node: Any) -> None:
    """Every string a request body may carry refuses NUL, as the server does."""
    if isinstance(node, dict):
        kind = node.get("type")
        is_text = kind == "string" or (isinstance(kind, list) and "string" in kind)
        # A pattern of its own (an email's, say) and NO_NUL: both.
        if is_text and "format" not in node and node.setdefault("pattern", NO_NUL) != NO_NUL:
            also = node.setdefault("allOf", [])
            if {"pattern": NO_NUL} not in also:
                also.append({"pattern": NO_NUL})
        for value in list(node.values()):
            _no_nul_strings(value)
    elif isinstance(node, list):
        for value in node:
            _no_nul_strings(value)


def make_exact(doc: Doc) -> Doc:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, struct in _strict_structs().items():
        if name in schemas:
            schemas[name]["additionalProperties"] = False
            _exact_fields(schemas[name], struct)
            _no_nul_strings(schemas[name])
    schemas["StorableJson"] = copy.deepcopy(STORABLE_JSON)
    _per_kind(schemas)
    _webhook_request(schemas)
    _batch_body(schemas, doc.get("paths", {}))
    _optional_bodies(doc.get("paths", {}))
    _links(doc.get("paths", {}))
    return doc


class ExactOpenAPIPlugin(OpenAPIPlugin):
    """Litestar's OpenAPI plugin, serving the document after `make_exact`."""

    __slots__ = ()

    def provide_openapi_schema(self) -> dict[str, Any]:
        if not self._openapi_schema:
            self._openapi_schema = make_exact(self.provide_openapi().to_schema())
        return self._openapi_schema


def use_exact_document(plugin: OpenAPIPlugin) -> None:
    """Make the app's OpenAPI plugin serve the exact document (same object, same state)."""
    plugin.__class__ = ExactOpenAPIPlugin
