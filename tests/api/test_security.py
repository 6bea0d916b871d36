"""Security: tenant isolation on every route and stream, key handling, secret redaction in
responses, streams and logs (while Fireworks still receives them), the least-privilege
database role, and no SQL built by string formatting. Runs a real `ftq serve` (with its
admission loop) in front of a real `ftq fireworks-sim`, so logs are the process's own."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from service import directory
from tests.e2e.conftest import Env, Proc, free_port, healthy, wait_for

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]
META = {"actor": "security-test"}
WANDB, AWS, DEEP = (f"secret-{name}-{secrets.token_hex(8)}" for name in ("wandb", "aws", "deep"))
SECRET_PAYLOAD: dict[str, Any] = {
    "baseModel": "accounts/fireworks/models/qwen3-14b",
    "dataset": "accounts/sec/datasets/sft",
    "wandbConfig": {"enabled": True, "project": "p", "apiKey": WANDB},
    "awsS3Config": {"credentialsSecret": AWS, "iamRoleArn": "arn:aws:iam::1:role/r"},
    "extra": {"a": [{"b": {"c": {"api_token": DEEP}}}]},
}
SECRETS = (WANDB, AWS, DEEP)


@dataclass
class Stack:
    url: str
    sim_url: str
    admin: str
    alice: str
    bob: str
    bob_key_id: str
    server: Proc
    env: Env
    session: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, key: str | None, body: Any = None, **headers: str
    ) -> tuple[int, str]:
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        async with self.session.request(
            method, f"{self.url}{path}", json=body, headers=headers
        ) as resp:
            return resp.status, await resp.text()

    async def stream(self, path: str, key: str, seconds: float = 1.5) -> tuple[int, str]:
        """Whatever a live stream sends within `seconds`."""
        chunks: list[bytes] = []
        headers = {"Authorization": f"Bearer {key}"}
        async with self.session.get(f"{self.url}{path}", headers=headers) as resp:
            if resp.status != 200:
                return resp.status, await resp.text()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    async for chunk in resp.content.iter_any():
                        chunks.append(chunk)
            return resp.status, b"".join(chunks).decode(errors="replace")


@pytest.fixture
async def stack(tmp_path: Path, db_url: str, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    env = Env(tmp_path)
    sim_port, port = free_port(), free_port()
    sim = await env.start(
        "fireworks-sim", "--port", str(sim_port), "--quota", "8", "--job-seconds", "30"
    )
    keys = {}
    for email, role in (
        ("root@sec.test", "admin"),
        ("alice@sec.test", "member"),
        ("bob@sec.test", "member"),
    ):
        await directory.add_user(pool, email, role, META)  # type: ignore[arg-type]
        keys[email] = await directory.issue_key(pool, email, "t", META)
    served = env.with_(
        DATABASE_URL=db_url,
        FIREWORKS_BASE_URL=f"http://127.0.0.1:{sim_port}",
        FIREWORKS_API_KEY="sim-key",
        FIREWORKS_ACCOUNT_ID="ftq-sim",
        FTQ_RECONCILE_SECONDS="0.5",
        FTQ_LOG_LEVEL="debug",  # the most the service ever logs
        FTQ_LOG_FORMAT="json",
    )
    server = await served.start("serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
    try:
        await wait_for(lambda: healthy(url), "ftq serve", server)
        assert sim.proc.returncode is None, sim.err
        yield Stack(
            url,
            f"http://127.0.0.1:{sim_port}",
            keys["root@sec.test"].key,
            keys["alice@sec.test"].key,
            keys["bob@sec.test"].key,
            keys["bob@sec.test"].id,
            server,
            served,
            session,
        )
    finally:
        await session.close()
        await env.stop_all()


def _job(**over: Any) -> dict[str, Any]:
    return {"kind": "SFT", "fireworks_payload": json.loads(json.dumps(SECRET_PAYLOAD)), **over}


async def _until(stack: Stack, job_id: str, state: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, text = await stack.call("GET", f"/jobs/{job_id}", stack.admin)
        body = json.loads(text)
        if status == 200 and body["state"] == state:
            return dict(body)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{job_id} never {state}: {body}")


def _assert_clean(what: str, text: str, *, extra: tuple[str, ...] = ()) -> None:
    for secret in (*SECRETS, *extra):
        assert secret not in text, f"{what} leaks {secret[:12]}...: {text[:500]}"


async def test_tenant_isolation_on_every_route_and_stream(stack: Stack) -> None:
    status, text = await stack.call("POST", "/jobs", stack.alice, _job(display_name="alice-1"))
    assert status == 201, text
    running = json.loads(text)["id"]
    await _until(stack, running, "PROGRESS")
    status, text = await stack.call("POST", "/jobs", stack.alice, _job(display_name="alice-2"))
    assert status == 201, text
    queued = json.loads(text)["id"]  # alice's cap is 1: this one waits in the queue
    for prefix in ("", "/functions/v1/jobs-api"):
        for job_id in (running, queued):
            for method, path in (
                ("GET", f"/jobs/{job_id}"),
                ("GET", f"/jobs/{job_id}/events"),
                ("GET", f"/jobs/{job_id}/events/stream"),
                ("DELETE", f"/jobs/{job_id}"),
            ):
                status, text = await stack.call(method, prefix + path, stack.bob)
                assert status == 404, (method, prefix + path, status, text)
                assert job_id not in text and "alice" not in text
        status, text = await stack.call("GET", f"{prefix}/jobs?limit=1000", stack.bob)
        assert status == 200 and json.loads(text) == [], text
        for query in ("", "?user=alice@sec.test", "?state=QUEUED", "?state=PROGRESS"):
            status, text = await stack.call("GET", f"{prefix}/jobs{query}", stack.bob)
            assert status in (200, 400, 403), text
            assert running not in text and queued not in text, (query, text)
    # /queue shows alice's queued job to bob, but neither her payload nor her email
    status, text = await stack.call("GET", "/queue", stack.bob)
    assert status == 200, text
    assert "alice@sec.test" not in text and "sec/datasets" not in text, text
    _assert_clean("/queue (bob)", text)
    # streams: bob's live history holds nothing of alice's, whatever the filters
    for path in (
        "/events/stream?after=0",
        f"/events/stream?after=0&job={running}",
        f"/events/stream?after=0&job={queued}&type=job.submitted",
    ):
        status, text = await stack.stream(path, stack.bob)
        assert status in (200, 404), (path, status, text)
        assert running not in text and queued not in text and "alice" not in text, (path, text)
    async with stack.session.get(
        f"{stack.url}/events/stream?after=0",
        headers={"Authorization": f"Bearer {stack.bob}", "Accept": "application/x-ndjson"},
    ) as resp:
        assert resp.status == 200
        chunks = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):
                async for chunk in resp.content.iter_any():
                    chunks.append(chunk)
        text = b"".join(chunks).decode()
        assert running not in text and queued not in text and "alice" not in text, text
    # alice's own view and the admin's do show them
    status, text = await stack.stream("/events/stream?after=0", stack.alice)
    assert status == 200 and running in text and queued in text
    status, text = await stack.call("GET", f"/jobs/{queued}", stack.admin)
    assert status == 200 and "alice@sec.test" in text
    # bob's cancel did nothing
    status, text = await stack.call("GET", f"/jobs/{queued}", stack.alice)
    assert json.loads(text)["state"] == "QUEUED"


async def test_keys_roles_and_secrets(stack: Stack, pool: asyncpg.Pool) -> None:
    # malformed, unknown and revoked keys are 401; members are 403 on admin routes
    for bad in (
        None,
        "",
        "sftq_",
        "sftq_" + "A" * 43,
        "Bearer",
        stack.bob + "x",
        stack.bob[:-1],
        "sftq_" + "é" * 10,
        "' OR 1=1 --",
        "x" * 5000,
    ):
        for path in ("/jobs", "/queue", "/capacity", "/admin/scheduler", "/events/stream"):
            headers = {} if bad is None else {"Authorization": f"Bearer {bad}"}
            async with stack.session.get(f"{stack.url}{path}", headers=headers) as resp:
                assert resp.status == 401, (bad and bad[:20], path, resp.status)
    for method, path, body in (
        ("GET", "/admin/scheduler", None),
        ("POST", "/admin/scheduler/pause", None),
        ("POST", "/admin/scheduler/resume", None),
        ("POST", "/admin/users", {"email": "mallory@sec.test", "role": "admin"}),
        ("POST", "/admin/users/00000000-0000-0000-0000-000000000000/keys", {}),
        ("DELETE", f"/admin/keys/{stack.bob_key_id}", None),
    ):
        status, text = await stack.call(method, path, stack.alice, body)
        assert status == 403, (method, path, status, text)
    status, text = await stack.call("GET", "/jobs", stack.bob)
    assert status == 200
    status, text = await stack.call("DELETE", f"/admin/keys/{stack.bob_key_id}", stack.admin)
    assert status == 200, text
    status, text = await stack.call("GET", "/jobs", stack.bob)
    assert status == 401, text
    # a key issued through the API: plaintext shown once
    status, text = await stack.call("POST", "/admin/users", stack.admin, {"email": "c@sec.test"})
    assert status == 201, text
    user_id = json.loads(text)["id"]
    status, text = await stack.call("POST", f"/admin/users/{user_id}/keys", stack.admin, {})
    assert status == 201, text
    carol = json.loads(text)["key"]

    # secrets: redacted in every response and stream, delivered to Fireworks
    status, text = await stack.call("POST", "/jobs", carol, _job(display_name="c1"))
    assert status == 201, text
    _assert_clean("POST /jobs", text)
    job_id = json.loads(text)["id"]
    status, text = await stack.call("POST", "/jobs", carol, _job(display_name="c2"))
    assert status == 201
    second = json.loads(text)["id"]
    job = await _until(stack, job_id, "PROGRESS")
    assert job["fireworks_payload"]["wandbConfig"]["apiKey"] == "***", job
    views = [
        await stack.call("GET", f"/jobs/{job_id}", carol),
        await stack.call("GET", f"/jobs/{second}", carol),
        await stack.call("GET", "/jobs", carol),
        await stack.call("GET", "/jobs", stack.admin),
        await stack.call("GET", "/queue", carol),
        await stack.call("GET", "/queue", stack.admin),
        await stack.call("GET", f"/jobs/{job_id}/events", carol),
        await stack.call("GET", f"/jobs/{job_id}/events", stack.admin),
        await stack.call("GET", f"/functions/v1/jobs-api/jobs/{job_id}", carol),
        await stack.stream("/events/stream?after=0", carol),
        await stack.stream("/events/stream?after=0", stack.admin),
        await stack.stream(f"/jobs/{job_id}/events/stream", carol, seconds=1),
    ]
    for n, (status, text) in enumerate(views):
        assert status == 200, (n, status, text)
        _assert_clean(f"view {n}", text)
    assert any(job_id in text for _, text in views[-3:])
    async with stack.session.get(
        f"{stack.sim_url}/v1/accounts/ftq-sim/supervisedFineTuningJobs/{job_id}",
        headers={"Authorization": "Bearer sim-key"},
    ) as resp:
        received = await resp.text()
        assert resp.status == 200, received
    for secret in SECRETS:  # Fireworks must still get them
        assert secret in received, (secret[:12], received)
    status, _ = await stack.call("DELETE", f"/jobs/{job_id}", carol)
    assert status in (200, 202)

    # no plaintext key anywhere in the database, nor in the logs
    keys = [stack.admin, stack.alice, stack.bob, carol]
    leaks = await _scan_database(pool, [*keys, *(k.removeprefix("sftq_") for k in keys)])
    assert not leaks, leaks
    # Stop the server (graceful: it writes every log line before it exits) rather than wait
    # and hope: its log must then hold the line of the last request it answered, our DELETE.
    assert await stack.server.stop() == 0
    logs = stack.server.out + stack.server.err
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(
        line.get("event") == "http.request"
        and line.get("method") == "DELETE"
        and line.get("job_id") == job_id
        for line in lines
    ), logs[-2000:]
    _assert_clean("the service's log", logs, extra=tuple(keys))
    for key in keys:
        assert key.removeprefix("sftq_") not in logs


async def _scan_database(pool: asyncpg.Pool, needles: list[str]) -> list[str]:
    columns = await pool.fetch(
        """SELECT c.table_schema, c.table_name, c.column_name
           FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
             AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea',
                                 'character', 'ARRAY', 'USER-DEFINED')"""
    )
    assert len(columns) > 5, columns
    leaks = []
    for row in columns:
        table = _ident(row["table_name"])
        column = _ident(row["column_name"])
        # identifiers come from the catalogue and are quoted; the needles are parameters
        sql = f"SELECT count(*) FROM {table} WHERE strpos({column}::text, $1) > 0"
        for needle in needles:
            if await pool.fetchval(sql, needle):
                leaks.append(f"{row['table_name']}.{row['column_name']}")
    return leaks


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the least-privilege role ---------------------------------------------------------------


def _role_statements(role: str, database: str) -> list[str]:
    """The statements of events/store/sql/least_privilege_role.sql (they ship commented out)."""
    text = (ROOT / "events" / "store" / "sql" / "least_privilege_role.sql").read_text()
    statements = []
    for line in text.splitlines():
        sql = line.removeprefix("--").strip()
        if not sql.startswith(("CREATE ROLE", "GRANT")):
            continue
        sql = sql.split(";", 1)[0]
        sql = sql.replace("ftq_service", role).replace("DATABASE ftq ", f'DATABASE "{database}" ')
        sql = sql.replace("PASSWORD 'change-me'", "PASSWORD 'lp-test'")
        statements.append(sql)
    assert any(s.startswith("CREATE ROLE") for s in statements), statements
    assert any("INSERT ON events" in s for s in statements), statements
    return statements


async def test_least_privilege_role_can_only_append_and_read(
    db_url: str, pool: asyncpg.Pool
) -> None:
    role = f"ftq_lp_{secrets.token_hex(4)}"
    database = await pool.fetchval("SELECT current_database()")
    for sql in _role_statements(role, database):
        await pool.execute(sql)
    try:
        conn = await asyncpg.connect(db_url, user=role, password="lp-test")
        try:
            assert await conn.fetchval("SELECT current_user") == role
            position = await conn.fetchval(
                """INSERT INTO events (stream_id, stream_version, type, schema_version, data,
                                       metadata)
                   VALUES ($1, 1, 'test.probe', 1, '{}'::jsonb, '{}'::jsonb)
                   RETURNING position""",
                f"lp-{role}",
            )
            assert position is not None
            assert await conn.fetchval("SELECT count(*) FROM events WHERE position = $1", position)
            for sql in (
                "UPDATE events SET type = 'x' WHERE position = $1",
                "DELETE FROM events WHERE position = $1",
            ):
                with pytest.raises(asyncpg.PostgresError):
                    await conn.execute(sql, position)
            with pytest.raises(asyncpg.PostgresError):
                await conn.execute("TRUNCATE events")
            with pytest.raises(asyncpg.PostgresError):  # not the projections either
                await conn.execute("DELETE FROM jobs")
        finally:
            await conn.close()
        assert (
            await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", f"lp-{role}")
            == 1
        )
    finally:
        await pool.execute(f'DROP OWNED BY "{role}"')
        await pool.execute(f'DROP ROLE "{role}"')


# -- no SQL built by formatting -------------------------------------------------------------

SQL_CALLS = {
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "cursor",
    "prepare",
    "copy_records_to_table",
}
# (file, function) pairs allowed to format an identifier into SQL, audited by hand:
ALLOWED = {("projections/rebuild.py", "*")}


def _formatted(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return _formatted(node.left) or _formatted(node.right) or isinstance(node.op, ast.Mod)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format"
    return False


def test_no_module_formats_values_into_sql() -> None:
    offenders = []
    for package in ("events", "projections", "service"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(), rel)
            # names assigned from a formatted string anywhere in the module
            tainted = {
                t.id
                for node in ast.walk(tree)
                if isinstance(node, ast.Assign) and _formatted(node.value)
                for t in node.targets
                if isinstance(t, ast.Name)
            }
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr not in SQL_CALLS or not node.args:
                    continue
                query = node.args[0]
                bad = _formatted(query) or (isinstance(query, ast.Name) and query.id in tainted)
                if bad and (rel, "*") not in ALLOWED:
                    offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"SQL built by string formatting: {offenders}"
    # and the one audited exception still exists where we think it does
    assert "projections/rebuild.py" in {a for a, _ in ALLOWED}
