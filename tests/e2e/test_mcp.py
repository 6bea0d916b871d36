"""`ftq mcp` driven by the MCP SDK's own client over stdio, against `ftq serve` with the
Fireworks simulator: the tools and their schemas, a job followed to SUCCESS with progress
notifications, cancel, bad arguments, another user's job, a wait that times out."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from tests.e2e.conftest import SFT_JOB, Stack, free_port, http, issue

FTQ_SCRIPT = str(Path(sys.executable).with_name("ftq"))  # .venv/bin/ftq, the console script
WANDB_SECRET = "wandb-secret-0123456789"  # a marker to look for in logs
TOOLS = {
    "submit_job",
    "list_jobs",
    "get_job",
    "cancel_job",
    "requeue_job",
    "queue",
    "capacity",
    "job_history",
    "wait_for_job",
}


class Session:
    """One `ftq mcp` process and an SDK client session on its stdio."""

    def __init__(self, client: ClientSession, log: Path) -> None:
        self.client = client
        self.log = log

    async def call(self, tool: str, arguments: dict[str, Any] | None = None, **kw: Any) -> Any:
        """The structured result of a call that must succeed."""
        result = await self.client.call_tool(tool, arguments or {}, **kw)
        assert not result.is_error, result.content
        assert isinstance(result.structured_content, dict)
        return result.structured_content

    async def error(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The ftq error body of a call that must fail as a tool error."""
        result = await self.client.call_tool(tool, arguments)
        return _error_of(result)


def _error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    error: dict[str, Any] = result.structured_content["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] in result.content[0].text
    return error


@asynccontextmanager
async def mcp(stack: Stack, key: str | None, url: str | None = None) -> AsyncIterator[Session]:
    # Only what `ftq mcp` needs: no DATABASE_URL, no Fireworks settings.
    env = {"HOME": str(stack.env.home), "FTQ_URL": url or stack.url}
    if key is not None:
        env["SFTQ_API_KEY"] = key
    params = StdioServerParameters(
        command=FTQ_SCRIPT, args=["mcp"], env=env, cwd=str(stack.env.home)
    )
    log = stack.env.home / f"mcp-{free_port()}.err"
    with log.open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, read_timeout_seconds=90) as client,
        ):
            await client.initialize()
            yield Session(client, log)


def sft_job(**payload: Any) -> dict[str, Any]:
    return {
        "kind": "SFT",
        "gpu_count": SFT_JOB["gpu_count"],
        "display_name": "mcp",
        "fireworks_payload": {**SFT_JOB["fireworks_payload"], **payload},
    }


async def job_seconds(stack: Stack, seconds: float) -> None:
    status, _ = await http("POST", f"{stack.sim_url}/_sim/config", body={"job_seconds": seconds})
    assert status < 300


async def test_tools_have_the_api_s_exact_schemas(stack: Stack) -> None:
    async with mcp(stack, stack.alice) as session:
        listed = {tool.name: tool for tool in (await session.client.list_tools()).tools}
    assert set(listed) == TOOLS
    for tool in listed.values():
        assert tool.description
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
        assert tool.annotations is not None
        assert tool.annotations.open_world_hint is False

    submit = listed["submit_job"]
    props = submit.input_schema["properties"]
    assert set(props) == {
        "kind",
        "fireworks_payload",
        "gpu_count",
        "display_name",
        "gpu_type",
        "max_runtime_minutes",
        "after",
        "idempotency_key",
    }
    assert submit.input_schema["required"] == ["kind", "fireworks_payload"]
    assert props["kind"] | {"description": ""} == {
        "type": "string",
        "enum": ["DPO", "RFT", "SFT"],
        "description": "",
    }
    assert props["fireworks_payload"]["type"] == "object"
    gpus = props["gpu_count"]
    assert (gpus["type"], gpus["minimum"], gpus["maximum"], gpus["default"]) == (
        "integer",
        1,
        1024,
        4,
    )
    name = props["display_name"]["anyOf"]
    assert {"type": "string", "maxLength": 200} in name and {"type": "null"} in name
    gpu_type = props["gpu_type"]["anyOf"][0]
    assert gpu_type == {"type": "string", "enum": ["b200", "h100", "h200"]}
    key = props["idempotency_key"]["anyOf"][0]
    assert (key["type"], key["minLength"], key["maxLength"]) == ("string", 1, 255)
    for rule in ("baseModel", "warmStartFrom", "trainingConfig.baseModel", "evaluator", "dataset"):
        assert rule in (submit.description or ""), rule

    listing = listed["list_jobs"].input_schema["properties"]
    assert listing["state"]["anyOf"][0]["enum"] == [
        "CANCELLED",
        "FAIL",
        "PROGRESS",
        "QUEUED",
        "SUCCESS",
    ]
    assert listing["kind"]["anyOf"][0]["enum"] == ["DPO", "RFT", "SFT"]
    limit = listing["limit"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == (
        "integer",
        1,
        1000,
        100,
    )
    for one_job in ("get_job", "cancel_job", "requeue_job", "job_history", "wait_for_job"):
        schema = listed[one_job].input_schema
        assert schema["required"] == ["job_id"]
        assert schema["properties"]["job_id"]["format"] == "uuid"
    timeout = listed["wait_for_job"].input_schema["properties"]["timeout_s"]
    assert (timeout["type"], timeout["minimum"], timeout["maximum"]) == ("number", 0, 86400)
    for bare in ("queue", "capacity"):
        assert listed[bare].input_schema["properties"] == {}

    read_only = {name for name, tool in listed.items() if tool.annotations.read_only_hint}
    assert read_only == TOOLS - {"submit_job", "cancel_job", "requeue_job"}
    assert listed["cancel_job"].annotations.destructive_hint is True
    assert listed["submit_job"].annotations.destructive_hint is False


async def test_submit_get_and_wait_until_success_with_progress(stack: Stack) -> None:
    await job_seconds(stack, 6)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with mcp(stack, stack.alice) as session:
        body = sft_job(wandbConfig={"project": "p", "apiKey": WANDB_SECRET})
        submitted = await session.call("submit_job", body | {"idempotency_key": "mcp-1"})
        assert submitted["state"] in {"QUEUED", "PROGRESS"}
        assert submitted["fireworks_payload"]["wandbConfig"]["apiKey"] == "***"
        again = await session.call("submit_job", body | {"idempotency_key": "mcp-1"})
        assert again["id"] == submitted["id"]  # a retry with the key is the same job

        job = await session.call("get_job", {"job_id": submitted["id"]})
        assert (job["id"], job["user"], job["kind"]) == (submitted["id"], "alice@e2e.test", "SFT")

        done = await session.call(
            "wait_for_job",
            {"job_id": submitted["id"], "timeout_s": 60},
            progress_callback=on_progress,
        )
        assert done["state"] == "SUCCESS" and done["timed_out"] is False
        assert done["fireworks_job_name"]

        history = await session.call("job_history", {"job_id": submitted["id"]})
        types = [event["type"] for event in history["events"]]
        assert types[0] == "job.submitted" and types[-1] == "job.succeeded"
        listed = await session.call("list_jobs", {"state": "SUCCESS", "kind": "SFT"})
        assert [j["id"] for j in listed["jobs"]] == [submitted["id"]]
        assert listed["next_cursor"] is None
        log = session.log

    values = [value for value, _, _ in seen]
    assert values == sorted(set(values)), seen  # strictly increasing, as MCP requires
    assert all(total == 100 for _, total, _ in seen)
    messages = [message or "" for _, _, message in seen]
    assert any(m.startswith("PROGRESS") for m in messages), seen
    assert any("%" in m for m in messages), seen  # Fireworks' percent, from the simulator
    assert values[-1] == 100 and messages[-1].startswith("SUCCESS"), seen

    logged = log.read_text()
    assert "tool=wait_for_job outcome=ok" in logged
    assert stack.alice not in logged and WANDB_SECRET not in logged


async def test_cancel_and_a_wait_that_times_out(stack: Stack) -> None:
    await job_seconds(stack, 60)
    async with mcp(stack, stack.alice) as session:
        running = await session.call("submit_job", sft_job())
        waiting = await session.call("submit_job", sft_job())  # alice's cap is 1: it waits

        timed_out = await session.call("wait_for_job", {"job_id": waiting["id"], "timeout_s": 1})
        assert timed_out["state"] == "QUEUED" and timed_out["timed_out"] is True
        assert timed_out["queue_position"] >= 1 and timed_out["pending_reason"]

        queue = await session.call("queue")
        assert waiting["id"] in [entry["id"] for entry in queue["queue"]]
        first = await session.call("list_jobs", {"limit": 1})
        assert [j["id"] for j in first["jobs"]] == [waiting["id"]]  # newest first
        rest = await session.call("list_jobs", {"limit": 1, "cursor": first["next_cursor"]})
        assert [j["id"] for j in rest["jobs"]] == [running["id"]]
        assert rest["next_cursor"] is None
        capacity = await session.call("capacity")
        assert {"quota", "in_use", "available", "source", "observed_at"} <= set(capacity)

        cancelled = await session.call("cancel_job", {"job_id": waiting["id"]})
        assert (cancelled["id"], cancelled["state"]) == (waiting["id"], "CANCELLED")
        assert cancelled["carried_out_later"] is False
        error = await session.error("cancel_job", {"job_id": waiting["id"]})
        assert error["code"] == "INVALID_STATE"

        ended = await session.call("wait_for_job", {"job_id": waiting["id"], "timeout_s": 30})
        assert ended["state"] == "CANCELLED" and ended["timed_out"] is False

        again = await session.call("requeue_job", {"job_id": waiting["id"]})
        assert again["requeued_from"] == waiting["id"] and again["state"] == "QUEUED"
        assert (
            again["id"] != waiting["id"]
            and again["fireworks_payload"] == waiting["fireworks_payload"]
        )
        refused = await session.error("requeue_job", {"job_id": again["id"]})
        assert refused["code"] == "INVALID_STATE"
        await session.call("cancel_job", {"job_id": again["id"]})

        stopped = await session.call("cancel_job", {"job_id": running["id"]})
        assert stopped["state"] == "CANCELLED" or stopped["carried_out_later"] is True
        final = await session.call("wait_for_job", {"job_id": running["id"], "timeout_s": 30})
        assert final["state"] == "CANCELLED"


async def test_bad_arguments_are_tool_errors_and_the_server_keeps_going(stack: Stack) -> None:
    async with mcp(stack, stack.alice) as session:
        zero = await session.error("submit_job", sft_job() | {"gpu_count": 0})
        assert zero["code"] == "VALIDATION_ERROR"
        assert zero["details"][0]["field"] == "gpu_count"
        assert zero["details"][0]["problem"] == "must be an integer, at least 1"

        unknown = await session.error("submit_job", sft_job() | {"kind": "PPO"})
        assert unknown["details"][0]["field"] == "kind"
        assert unknown["details"][0]["allowed"] == ["DPO", "RFT", "SFT"]

        text = await session.error("submit_job", sft_job() | {"gpu_count": "4"})
        assert text["details"][0] == {
            "field": "gpu_count",
            "problem": "must be an integer, not a string",
        }
        limit = await session.error("submit_job", sft_job() | {"max_runtime_minutes": 43201})
        assert limit["details"][0]["field"] == "max_runtime_minutes"
        typo = await session.error("submit_job", sft_job() | {"gpus": 4})
        assert typo["details"] == [{"field": "gpus", "problem": "unknown argument"}]
        missing = await session.error("submit_job", {"kind": "SFT"})
        assert missing["details"] == [{"field": "fireworks_payload", "problem": "required"}]
        not_an_id = await session.error("get_job", {"job_id": "42"})
        assert not_an_id["details"][0]["field"] == "job_id"
        too_long = await session.error(
            "wait_for_job", {"job_id": str(uuid.uuid4()), "timeout_s": -1}
        )
        assert too_long["details"][0]["field"] == "timeout_s"

        # The per-kind payload rules are ftq's own: its VALIDATION_ERROR comes through whole.
        both = await session.error(
            "submit_job", sft_job(warmStartFrom="accounts/e2e/models/sft-out")
        )
        assert both["code"] == "VALIDATION_ERROR"
        assert both["details"][0]["field"] == "fireworks_payload.warmStartFrom"
        rft = await session.error(
            "submit_job", {"kind": "RFT", "fireworks_payload": {"dataset": "accounts/e/d"}}
        )
        assert [d["field"] for d in rft["details"]] == ["fireworks_payload.evaluator"]

        with pytest.raises(MCPError):
            await session.client.call_tool("submit_jobs", {})  # no such tool

        # Nothing above was submitted, and the server still answers.
        assert (await session.call("list_jobs"))["jobs"] == []


async def test_a_member_never_sees_another_user_s_job(stack: Stack) -> None:
    bob = await issue(stack.env, "bob@e2e.test", "member")
    async with mcp(stack, stack.alice) as alice:
        job = await alice.call("submit_job", sft_job())
    async with mcp(stack, bob) as session:
        for tool in ("get_job", "cancel_job", "job_history", "wait_for_job"):
            error = await session.error(tool, {"job_id": job["id"]})
            assert error["code"] == "NOT_FOUND", (tool, error)
        assert (await session.call("list_jobs"))["jobs"] == []
    async with mcp(stack, stack.admin) as admin:
        assert (await admin.call("get_job", {"job_id": job["id"]}))["user"] == "alice@e2e.test"


async def test_no_key_a_bad_key_and_no_ftq_are_tool_errors(stack: Stack) -> None:
    async with mcp(stack, None) as session:
        error = await session.error("list_jobs", {})
        assert error["code"] == "UNAUTHENTICATED" and "SFTQ_API_KEY" in error["message"]
    async with mcp(stack, "sftq_not-a-key") as session:
        assert (await session.error("capacity", {}))["code"] == "UNAUTHENTICATED"
        log = session.log
    assert "tool=capacity outcome=UNAUTHENTICATED" in log.read_text()
    assert "sftq_not-a-key" not in log.read_text()
    async with mcp(stack, stack.alice, url=f"http://127.0.0.1:{free_port()}") as session:
        assert (await session.error("queue", {}))["code"] == "UNAVAILABLE"
