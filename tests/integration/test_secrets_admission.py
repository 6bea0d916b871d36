"""Payload secrets against a real database and the simulator (issue 20): a job whose data key
this process cannot open is kept out of the plans while the others flow; the retention
shreds ended jobs and replay/audit/rebuild stay clean; rotation under load loses no job."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import structlog

from events.domain.job import JOB
from events.domain.job_commands import RequestCancel, SubmitJob
from events.store.log import Cursor, RecordedEvent, read_all
from projections.audit import audit
from projections.rebuild import verify
from service.admission.loop import AdmissionLoop
from service.capacity import CapacityReader
from service.commands import run_command
from service.fireworks.simulator.state import GPU_QUOTA
from service.secrets.keys import Keyring, MasterKey, parse_key
from service.secrets.rotate import rotate
from service.secrets.shred import shred_due
from service.secrets.vault import Vault
from service.settings import Settings
from service.submissions import Submitter
from tests.integration.admission_env import ACCOUNT, META, PAYLOAD, Env, env

__all__ = ["env"]


def loop_with(env: Env, vault: Vault | None, **settings: Any) -> AdmissionLoop:
    s = Settings(fireworks_account_id=ACCOUNT, database_url=env.db_url, **settings)
    capacity = CapacityReader(env.client, s, cache_seconds=0)
    return AdmissionLoop(
        env.pool, env.client, s, None, capacity=capacity, clock=env.clock, vault=vault
    )


def master() -> MasterKey:
    return parse_key(base64.b64encode(os.urandom(32)).decode(), "test")


def secret_payload(n: int = 0) -> dict[str, Any]:
    return {**PAYLOAD["SFT"], "wandbConfig": {"apiKey": f"wb-secret-{n}-{uuid.uuid4()}"}}


async def submit(env: Env, vault: Vault | None, payload: dict[str, Any], gpus: int = 1) -> str:
    job_id = str(uuid.uuid4())
    command = SubmitJob(
        at=env.clock(), job_id=job_id, user_id=str(uuid.uuid4()), user_email="u@example.com",
        kind="SFT", display_name=None, gpu_count=gpus, fireworks_payload=payload,
    )  # fmt: skip
    await Submitter(env.pool, None, vault=vault).submit(command, META)
    return job_id


async def log_rows(pool: asyncpg.Pool) -> list[RecordedEvent]:
    async with pool.acquire() as conn:
        return await read_all(conn, Cursor.START, 100_000)


async def test_a_job_this_key_cannot_open_waits_while_others_flow(env: Env) -> None:
    key_a, key_b = master(), master()
    a = Vault(Keyring(key_a))
    first = secret_payload(1)
    sealed = await submit(env, a, first, gpus=2)  # the head of the queue
    plain = await submit(env, a, dict(PAYLOAD["SFT"]), gpus=2)
    second = await submit(env, a, secret_payload(2), gpus=2)

    wrong = Vault(Keyring(key_b))
    with structlog.testing.capture_logs() as logs:
        assert await wrong.check_at_start(env.pool) == 2
    (error,) = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "secrets.master_key_mismatch" and error["data_keys"] == 2
    await loop_with(env, wrong).tick()
    assert await env.states(sealed, plain, second) == ["QUEUED", "PROGRESS", "QUEUED"]
    assert env.sim.state.create_requests.get(sealed) is None

    await loop_with(env, a).tick()
    assert await env.states(sealed, plain, second) == ["PROGRESS"] * 3
    assert env.sim.state.jobs[sealed].payload == first


async def test_no_key_at_all_blocks_only_sealed_jobs(env: Env) -> None:
    a = Vault(Keyring(master()))
    sealed = await submit(env, a, secret_payload())
    plain = await submit(env, a, dict(PAYLOAD["SFT"]))
    await env.loop().tick()  # a loop without a vault
    assert await env.states(sealed, plain) == ["QUEUED", "PROGRESS"]


async def test_retention_shreds_ended_jobs_and_the_log_stays_clean(env: Env) -> None:
    vault = Vault(Keyring(master()))
    ended = await submit(env, vault, secret_payload())
    queued = await submit(env, vault, secret_payload())
    state, _ = await run_command(env.pool, JOB, ended, RequestCancel(at=env.clock(), by="u"), META)
    assert state.completed_at is not None
    orphan = str(uuid.uuid4())  # a key whose submit never committed
    await env.pool.execute(
        "INSERT INTO job_data_keys (job_id, kid, wrapped, created_at)"
        " VALUES ($1, 'x', '\\x00', now() - interval '2 hours')",
        orphan,
    )
    soon = state.completed_at + timedelta(days=6)
    assert await shred_due(env.pool, 7, clock=lambda: soon) == 0
    later = state.completed_at + timedelta(days=7, minutes=1)
    assert await shred_due(env.pool, 7, clock=lambda: later) == 1
    keys = {str(r[0]) for r in await env.pool.fetch("SELECT job_id FROM job_data_keys")}
    assert keys == {queued}  # the ended job's key and the orphan are gone
    types = await env.event_types(ended)
    assert types[-1] == "job.secrets_shredded"
    by = await env.pool.fetchval(
        "SELECT data->>'by' FROM events WHERE type = 'job.secrets_shredded'"
    )
    assert by == "retention"
    assert audit(await log_rows(env.pool), default_cap=1) == []
    async with env.pool.acquire() as conn:
        assert await verify(conn) == []
    assert await shred_due(env.pool, 7, clock=lambda: later) == 0  # nothing twice


async def test_rotation_under_load_loses_no_job(env: Env) -> None:
    env.sim.state.quotas[GPU_QUOTA].value = 10_000
    old, new = master(), master()
    before = Vault(Keyring(old))
    during = Vault(Keyring(new, (old,)))  # replicas restarted for the rotation
    payloads: dict[str, dict[str, Any]] = {}
    for n in range(60):
        payload = secret_payload(n)
        payloads[await submit(env, before, payload)] = payload

    loop = loop_with(env, during)

    async def submits() -> None:
        for n in range(60, 120):
            payload = secret_payload(n)
            vault = before if n % 3 == 0 else during  # a replica not yet restarted, too
            payloads[await submit(env, vault, payload)] = payload
            await asyncio.sleep(0)

    async def admissions() -> None:
        for _ in range(6):
            await loop.tick()

    async def rotations() -> int:
        done = 0
        for _ in range(3):
            done += (await rotate(env.pool, new, [old], batch=7)).rewrapped
            await asyncio.sleep(0)
        return done

    _, _, rewrapped = await asyncio.gather(submits(), admissions(), rotations())
    rewrapped += (await rotate(env.pool, new, [old])).rewrapped  # resumed: what is left
    assert rewrapped >= 60
    kids = {r[0] for r in await env.pool.fetch("SELECT DISTINCT kid FROM job_data_keys")}
    assert kids == {new.kid}
    only_new = Vault(Keyring(new))
    for job_id, payload in payloads.items():
        row = await env.row(job_id)
        sealed = json.loads(row["fireworks_payload"])
        assert await only_new.open(env.pool, job_id, sealed) == payload
    await loop.tick()
    states = await env.states(*payloads)
    assert states == ["PROGRESS"] * len(payloads)
    for job_id, payload in payloads.items():
        assert env.sim.state.jobs[job_id].payload == payload


async def test_a_requeue_of_a_shredded_job_asks_for_the_secrets_again(env: Env) -> None:
    from projections.recorder import load  # noqa: PLC0415
    from service.secrets.requeue import SecretsNeeded, requeue_payload  # noqa: PLC0415
    from service.secrets.shred import shred  # noqa: PLC0415

    vault = Vault(Keyring(master()))
    payload = secret_payload()
    job_id = await submit(env, vault, payload)
    await run_command(env.pool, JOB, job_id, RequestCancel(at=env.clock(), by="u"), META)
    async with env.pool.acquire() as conn:
        old = await load(conn, JOB, job_id)
    assert await requeue_payload(vault, env.pool, old) == payload  # opened, to seal anew
    plain = dict(PAYLOAD["SFT"])
    await shred(env.pool, job_id, "u@example.com", META)
    async with env.pool.acquire() as conn:
        old = await load(conn, JOB, job_id)
    with pytest.raises(SecretsNeeded) as needed:
        await requeue_payload(vault, env.pool, old)
    assert needed.value.fields == ["wandbConfig.apiKey"]
    assert needed.value.details()[0]["field"] == "fireworks_payload.wandbConfig.apiKey"
    assert await requeue_payload(vault, env.pool, old, plain) == plain
