"""The tools `ftq mcp` offers: each one's arguments as a msgspec struct (the one source of both
the JSON Schema clients are shown and the strict check of every call), its description for
the agent, and its MCP annotations. Types and ranges come from the API's own schemas."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from events.domain.job_events import JobStatus, Kind
from service.api.schemas import DisplayName, GpuCount, GpuType, MaxRuntimeMinutes
from service.mcp.errors import invalid_arguments

JobId = Annotated[uuid.UUID, Meta(description="The ftq job id (a uuid, from submit_job).")]
# Printable ASCII, as the API's Idempotency-Key header.
IdempotencyKey = Annotated[
    str, Meta(min_length=1, max_length=255, pattern=r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$")
]
FORMS: Final = {"idempotency_key": "printable ASCII, not only spaces"}  # its pattern in words


class Arguments(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Tool arguments: unknown names are refused, as unknown fields of POST /jobs are."""


class SubmitJobArguments(Arguments, frozen=True):
    kind: Annotated[Kind, Meta(description="SFT, DPO or RFT: the Fireworks job kind.")]
    fireworks_payload: Annotated[
        dict[str, Any],
        Meta(
            description="The exact body you would have sent to Fireworks' create call for "
            "this kind (camelCase Fireworks fields). Rules per kind are in the tool's "
            "description."
        ),
    ]
    gpu_count: GpuCount = 4
    display_name: Annotated[
        DisplayName | None, Meta(description="A name people recognise (at most 200 characters).")
    ] = None
    gpu_type: Annotated[
        GpuType | None, Meta(description="The GPU quota the job counts against.")
    ] = None
    max_runtime_minutes: Annotated[
        MaxRuntimeMinutes | None,
        Meta(
            description="Cancel the job on Fireworks if it runs longer than this, in minutes "
            "from its admission (1..43200); default: the operator's limit, if any."
        ),
    ] = None
    after: Annotated[
        Annotated[list[JobId], Meta(max_length=100)] | None,
        Meta(
            description="Ids of your own jobs this one waits for (a pipeline, e.g. a DPO after "
            "the SFT whose output model it warm-starts from): it stays QUEUED until every one "
            "is SUCCESS, and FAILs at once if one ends FAIL or CANCELLED."
        ),
    ] = None
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Meta(
            description="Give one to retry safely: the same key and body return the same job; "
            "the same key with another body is IDEMPOTENCY_CONFLICT. Printable ASCII, "
            "1..255 characters."
        ),
    ] = None


class ListJobsArguments(Arguments, frozen=True):
    state: Annotated[JobStatus | None, Meta(description="Only jobs in this state.")] = None
    kind: Annotated[Kind | None, Meta(description="Only jobs of this kind.")] = None
    limit: Annotated[int, Meta(ge=1, le=1000, description="At most this many (1..1000).")] = 100
    cursor: Annotated[
        Annotated[str, Meta(max_length=200)] | None,
        Meta(description="`next_cursor` of the previous page, for the next one."),
    ] = None
    user: Annotated[
        Annotated[str, Meta(max_length=320)] | None,
        Meta(description="Admins only: one user's jobs (email or user id)."),
    ] = None


class JobArguments(Arguments, frozen=True):
    job_id: JobId


class WaitArguments(Arguments, frozen=True):
    job_id: JobId
    timeout_s: Annotated[
        float,
        Meta(ge=0, le=86400, description="Give up waiting after this many seconds (0..86400)."),
    ] = 600


class NoArguments(Arguments, frozen=True):
    pass


SUBMIT_RULES: Final = """\
Submit a Fireworks fine-tuning job to ftq's fair queue; ftq creates it on Fireworks when \
GPUs and your per-user cap allow. Never create fine-tuning jobs on Fireworks directly. \
Returns the job (state QUEUED, with queue_position and pending_reason).

fireworks_payload rules, checked at submit (a VALIDATION_ERROR names each bad field):
- every kind: `dataset` (a Fireworks dataset name) is required;
- SFT (supervisedFineTuningJobs): exactly one of `baseModel` or `warmStartFrom`;
- DPO (dpoJobs): exactly one of `trainingConfig.baseModel` or `trainingConfig.warmStartFrom` \
(e.g. an SFT job's output model), or a top-level `warmStartFrom` instead;
- RFT (reinforcementFineTuningJobs): `evaluator` (a Fireworks evaluator name) is required.
Secrets in the payload (wandbConfig.apiKey and the like) are stored but always shown as "***".
gpu_count (1..1024, default 4) is what admission reserves. Retrying after a timeout? Pass \
the same idempotency_key so the job is not submitted twice."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, what the agent reads about it, and how its arguments are checked."""

    name: str
    title: str
    description: str
    arguments: type[Arguments]
    read_only: bool
    destructive: bool = False

    def input_schema(self) -> dict[str, Any]:
        """The arguments' JSON Schema, an object at the root as MCP requires."""
        (ref,), components = msgspec.json.schema_components([self.arguments])
        schema = dict(components[ref["$ref"].rsplit("/", 1)[1]])
        schema.pop("title", None)
        schema.pop("description", None)
        typed: dict[str, Any] = _typed_enums(schema)
        return typed

    def parse(self, arguments: dict[str, Any] | None) -> Arguments:
        """The call's arguments checked strictly ("4" is not 4); a bad one is a tool error."""
        try:
            return msgspec.convert(arguments or {}, self.arguments, strict=True)
        except msgspec.ValidationError as exc:
            raise invalid_arguments(self.name, exc, self.input_schema(), FORMS) from None


def _typed_enums(schema: Any) -> Any:
    """msgspec leaves `type` off string enums; clients that read `type` get `string`."""
    if isinstance(schema, dict):
        out = {k: _typed_enums(v) for k, v in schema.items()}
        if "enum" in out and "type" not in out and all(isinstance(v, str) for v in out["enum"]):
            out["type"] = "string"
        return out
    if isinstance(schema, list):
        return [_typed_enums(item) for item in schema]
    return schema


TOOLS: Final = (
    ToolSpec("submit_job", "Submit a fine-tuning job", SUBMIT_RULES, SubmitJobArguments, False),
    ToolSpec(
        "list_jobs",
        "List fine-tuning jobs",
        "Your ftq jobs (admins: everyone's), newest first, as {jobs, next_cursor}; pass "
        "next_cursor back as `cursor` for the next page (null: no more).",
        ListJobsArguments,
        True,
    ),
    ToolSpec(
        "get_job",
        "Show one job",
        "One ftq job: state (QUEUED, PROGRESS, SUCCESS, FAIL, CANCELLED), Fireworks job name, "
        "state and progress percent, error; while QUEUED also queue_position (1 = next), "
        "pending_reason in plain words and, where the server estimates it, eta. Another "
        "user's job is NOT_FOUND.",
        JobArguments,
        True,
    ),
    ToolSpec(
        "cancel_job",
        "Cancel a job",
        "Cancel an ftq job: a QUEUED job at once; a PROGRESS job on Fireworks first (ftq does "
        "it; never cancel or delete the Fireworks job yourself). Returns {id, state}; "
        "`carried_out_later`: true when Fireworks could not be reached and ftq will finish "
        "the cancel. A job already SUCCESS, FAIL or CANCELLED is INVALID_STATE.",
        JobArguments,
        False,
        destructive=True,
    ),
    ToolSpec(
        "requeue_job",
        "Requeue a failed or cancelled job",
        "Submit a job that ended FAIL or CANCELLED again: a new job (same kind, payload, GPUs "
        "and runtime limit) at the back of the queue, with `requeued_from` the old job's id. "
        "Returns the new job. A job QUEUED, in PROGRESS or SUCCESS is INVALID_STATE.",
        JobArguments,
        False,
    ),
    ToolSpec(
        "queue",
        "Show the queue",
        "The QUEUED jobs in admission order, each with queue_position and pending_reason "
        "(other users' jobs show no payload and no email). Returns {queue}.",
        NoArguments,
        True,
    ),
    ToolSpec(
        "capacity",
        "Show GPU capacity",
        "The account's fine-tuning GPUs: {quota, in_use, available, source, observed_at}.",
        NoArguments,
        True,
    ),
    ToolSpec(
        "job_history",
        "Show a job's history",
        "Everything recorded about one job, oldest first, from ftq's event log: "
        "{events: [{position, version, type, recorded_at, data}]}.",
        JobArguments,
        True,
    ),
    ToolSpec(
        "wait_for_job",
        "Wait for a job to end",
        "Follow one job live until it is SUCCESS, FAIL or CANCELLED, reporting progress "
        "notifications as its state and Fireworks percent change; then return the job (as "
        "get_job). When timeout_s passes first, the job is returned as it stands with "
        "`timed_out`: true (not an error): call again to keep waiting.",
        WaitArguments,
        True,
    ),
)
TOOL_BY_NAME: Final = {tool.name: tool for tool in TOOLS}
