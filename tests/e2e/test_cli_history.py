"""`ftq replay` (json, until-position, export, verify) and `ftq audit` against real logs."""

from __future__ import annotations

import json
import stat
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from events.domain import codec
from events.domain.directory_events import UserAdded, UserCapSet, user_stream
from events.domain.job_events import AdmissionReason, AdmissionStarted, JobSubmitted
from events.store.log import NewEvent, append
from tests.e2e.conftest import SFT_JOB, Env, Stack, http, wait_for


async def job_done(stack: Stack, job_id: str) -> bool:
    status, job = await http("GET", f"{stack.url}/jobs/{job_id}", stack.admin)
    return status == 200 and job["state"] == "SUCCESS"


def summary(jobs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((j["id"], j["state"], j["user"]) for j in jobs)


async def replay_json(env: Env, *args: str) -> dict[str, Any]:
    result = await env.run("replay", "--json", *args)
    assert result.code == 0, result.err
    view: dict[str, Any] = json.loads(result.out)
    return view


async def test_replay_matches_the_api_reproduces_the_past_exports_and_verifies(
    stack: Stack, db_url: str, empty_db_url: str
) -> None:
    status, job = await http("POST", f"{stack.url}/jobs", stack.alice, SFT_JOB)
    assert status == 201, job
    await wait_for(lambda: job_done(stack, job["id"]), "the job to succeed", timeout=60)

    # replay --json equals the API's view of the jobs
    view = await replay_json(stack.env)
    _, api_jobs = await http("GET", f"{stack.url}/jobs", stack.admin)
    assert summary(view["jobs"]) == summary(api_jobs)
    assert {u["email"] for u in view["users"]} == {"root@e2e.test", "alice@e2e.test"}

    # --until-position reproduces an earlier state
    _, history = await http("GET", f"{stack.url}/jobs/{job['id']}/events", stack.alice)
    submitted = next(e["position"] for e in history if e["type"] == "job.submitted")
    earlier = await replay_json(stack.env, "--until-position", str(submitted))
    assert [(j["id"], j["state"]) for j in earlier["jobs"]] == [(job["id"], "QUEUED")]
    assert earlier["position"] == submitted
    submitted_at = next(e["recorded_at"] for e in history if e["type"] == "job.submitted")
    assert (await replay_json(stack.env, "--at", submitted_at))["jobs"] == earlier["jobs"]
    table = await stack.env.run("replay", "--until-position", str(submitted))
    assert table.code == 0 and job["id"] in table.out and "QUEUED" in table.out

    # --export round-trips through plain INSERTs into a fresh database
    export = stack.env.home / "log.ndjson"
    export.write_text("an older, world-readable export")
    export.chmod(0o644)
    exported = await stack.env.run("replay", "--export", str(export))
    assert exported.code == 0, exported.err
    assert stat.S_IMODE(export.stat().st_mode) == 0o600  # it holds payload secrets
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [line["position"] for line in lines] == sorted(line["position"] for line in lines)
    fresh = stack.env.with_(DATABASE_URL=empty_db_url)
    assert (await fresh.run("migrate")).code == 0
    conn = await asyncpg.connect(empty_db_url)
    try:
        for e in lines:
            await conn.execute(
                "INSERT INTO events (position, transaction_id, stream_id, stream_version, type,"
                " schema_version, recorded_at, metadata, data) OVERRIDING SYSTEM VALUE"
                " VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7::text::timestamptz,"
                " $8::jsonb, $9::jsonb)",
                e["position"], str(e["transaction_id"]), e["stream_id"], e["stream_version"],
                e["type"], e["schema_version"], e["recorded_at"], json.dumps(e["metadata"]),
                json.dumps(e["data"]),
            )  # fmt: skip
    finally:
        await conn.close()
    assert await replay_json(fresh) == view

    # --verify passes a clean projection and names a tampered one
    clean = await stack.env.run("replay", "--verify")
    assert clean.code == 0, clean.err
    assert "projections match the log" in clean.err
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("UPDATE jobs SET state = 'FAIL' WHERE id = $1::uuid", job["id"])
    finally:
        await conn.close()
    tampered = await stack.env.run("replay", "--verify")
    assert tampered.code == 1
    assert "jobs" in tampered.err and job["id"] in tampered.err


T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def record(conn: asyncpg.Connection, stream: str, version: int, event: Any) -> None:
    type_ = codec.event_type(event)
    new = NewEvent(type_, codec.encode(event), codec.schema_version(type_))
    await append(conn, stream, version, [new], {"actor": "test"})


async def submit_and_admit(conn: asyncpg.Connection, user_id: str, in_use: int) -> None:
    job_id = str(uuid.uuid4())
    submitted = JobSubmitted(
        at=T0, job_id=job_id, user_id=user_id, user_email="cap@e2e.test", kind="SFT",
        display_name=None, gpu_count=4, fireworks_payload={"dataset": "d", "baseModel": "m"},
    )  # fmt: skip
    reason = AdmissionReason(
        policy="strict-fifo", quota=16, in_use=in_use, available=16 - in_use, queue_position=1
    )
    started = AdmissionStarted(
        at=T0, fireworks_job_id=job_id, fireworks_job_name=f"accounts/a/jobs/{job_id}",
        reason=reason,
    )  # fmt: skip
    await record(conn, job_id, 0, submitted)
    await record(conn, job_id, 1, started)


async def test_audit_passes_a_clean_history_and_names_a_broken_one(env: Env, db_url: str) -> None:
    db = env.with_(DATABASE_URL=db_url)
    user_id = str(uuid.uuid4())
    conn = await asyncpg.connect(db_url)
    try:
        stream = user_stream("cap@e2e.test")
        await record(conn, stream, 0, UserAdded(at=T0, user_id=user_id, email="cap@e2e.test",
                                                role="member"))  # fmt: skip
        await record(conn, stream, 1, UserCapSet(at=T0, user_id=user_id, cap=1))
        await submit_and_admit(conn, user_id, in_use=0)
        clean = await db.run("audit")
        assert clean.code == 0, clean.out + clean.err
        await submit_and_admit(conn, user_id, in_use=4)  # a second admission over the cap
    finally:
        await conn.close()
    broken = await db.run("audit")
    assert broken.code == 1
    assert "per-user-cap" in broken.out
    assert "violation" in broken.err
