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
from service.api.validation import (
    _INTEGERS,
    _NUMBERS,
    _OBJECTS,
    _STRINGS,
)

Doc = dict[str, Any]

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


def _strict_struct_names() -> set[str]:
    """The request structs that refuse unknown fields (`forbid_unknown_fields=True`)."""
    return {
        name
        for name, value in vars(api_schemas).items()
        if inspect.isclass(value)
        and issubclass(value, msgspec.Struct)
        and value.__struct_config__.forbid_unknown_fields
    }


def _payload_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in _STRINGS:  # a string, and (but a Jinja template) not only whitespace
        fields[key] = (
            {"type": "string"} if key == "jinjaTemplate" else {"type": "string", "pattern": r"\S"}
        )
    fields |= {key: {"type": "object"} for key in _OBJECTS}
    fields |= {key: {"type": "integer"} for key in _INTEGERS}
    fields |= {key: {"type": "number"} for key in _NUMBERS}
    return fields


def payload_schemas() -> dict[str, Any]:
    """`fireworks_payload` per kind, as `service.api.validation.payload_problems` checks it
    (other Fireworks fields pass through)."""
    fields = _payload_fields()
    training = {"type": "object", "properties": fields}
    base = {
        "type": "object",
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


def _per_kind(schemas: Doc) -> None:
    base = schemas.get("JobSubmission")
    if base is None or "oneOf" in base:
        return
    refs = {}
    for kind, payload in payload_schemas().items():
        variant = copy.deepcopy(base)
        variant["title"] = f"{kind}JobSubmission"
        variant["properties"]["kind"] = {"type": "string", "enum": [kind]}
        variant["properties"]["fireworks_payload"] = payload
        variant["additionalProperties"] = False
        schemas[variant["title"]] = variant
        refs[kind] = f"#/components/schemas/{variant['title']}"
    schemas["JobSubmission"] = {
        "title": "JobSubmission",
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "kind", "mapping": refs},
    }


def _optional_bodies(paths: Doc) -> None:
    for path, method in OPTIONAL_BODIES:
        body = paths.get(path, {}).get(method, {}).get("requestBody")
        if body is None:
            continue
        body["required"] = False
        for media in body.get("content", {}).values():
            alternatives = media.get("schema", {}).get("oneOf", [])
            refs = [a for a in alternatives if a.get("type") != "null"]
            if len(refs) == 1:  # "no body" is said by required: false, not by a JSON null
                media["schema"] = refs[0]


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


def make_exact(doc: Doc) -> Doc:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in _strict_struct_names() & set(schemas):
        schemas[name]["additionalProperties"] = False
    _per_kind(schemas)
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
