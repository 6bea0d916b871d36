"""`ftq migrate`, `users`, `keys` and `serve` as real processes."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg

from tests.e2e.conftest import Env, free_port, healthy, http, issue, wait_for


async def test_migrate_twice_applies_nothing_the_second_time(env: Env, empty_db_url: str) -> None:
    db = env.with_(DATABASE_URL=empty_db_url)
    unmigrated = await db.run("replay")
    assert unmigrated.code == 1 and "ftq migrate" in unmigrated.err
    first = await db.run("migrate")
    assert first.code == 0, first.err
    assert "applied events/0001_event_log" in first.out
    second = await db.run("migrate")
    assert second.code == 0, second.err
    assert second.out.strip() == "up to date"


async def test_commands_say_which_database_they_opened_never_its_password(
    env: Env, db_url: str
) -> None:
    parts = urlsplit(db_url)
    assert not parts.password  # the test servers (local or embedded) trust local connections
    netloc = f"{parts.username}:s3cret@{parts.netloc.rpartition('@')[2]}"
    secret_url = urlunsplit(parts._replace(netloc=netloc))
    socket = parse_qs(parts.query).get("host", [None])[0]  # the embedded server's socket
    where = f"socket {socket}" if parts.hostname is None else f"{parts.hostname}:{parts.port}"
    said = f"database {parts.path.lstrip('/')} on {where}"
    for args in (("users", "list"), ("replay",), ("audit",), ("migrate",)):
        result = await env.with_(DATABASE_URL=secret_url).run(*args)
        assert result.code == 0, result.err
        assert f"using {said} as {parts.username} (DATABASE_URL)" in result.err, result.err
        assert "s3cret" not in result.err + result.out
    fallback = await env.run("users", "list")
    assert fallback.code == 0, fallback.err
    assert "embedded PostgreSQL in" in fallback.err and "no ftq demo is running" in fallback.err


async def test_migrate_and_serve_refuse_an_edited_applied_migration(env: Env, db_url: str) -> None:
    """The database recorded another checksum for 0001 than the file has now (as if the file
    had been edited after it was applied): `ftq migrate` and `ftq serve`'s startup migration
    both refuse, naming the file, and change nothing."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "UPDATE schema_migrations SET checksum = repeat('0', 64)"
            " WHERE component = 'events' AND version = 1"
        )
    finally:
        await conn.close()
    db = env.with_(DATABASE_URL=db_url, FIREWORKS_BASE_URL="simulator")
    refused = await db.run("migrate")
    assert refused.code == 1
    assert "events/0001_event_log was edited" in refused.err
    assert "0001_event_log.sql" in refused.err and "Traceback" not in refused.err
    server = await db.start("serve", "--port", str(free_port()), "--no-scheduler")
    code = await asyncio.wait_for(server.proc.wait(), 60)  # it exits: startup failed
    assert code != 0
    assert "events/0001_event_log was edited" in server.err


async def test_issued_key_works_until_revoked_and_only_its_hash_is_stored(
    env: Env, db_url: str
) -> None:
    db = env.with_(DATABASE_URL=db_url, FIREWORKS_BASE_URL="simulator")
    key = await issue(db, "ann@e2e.test", "member")
    assert key.startswith("sftq_") and len(key) == 48
    issued_again = await db.run("keys", "issue", "ann@e2e.test", "--label", "laptop")
    assert issued_again.code == 0
    assert issued_again.last_line.startswith("sftq_")
    assert not any("sftq_" in line for line in issued_again.out.splitlines()[:-1])
    assert "sftq_" not in issued_again.err

    listed = await db.run("keys", "list")
    assert listed.code == 0, listed.err
    conn = await asyncpg.connect(db_url)
    try:
        key_id, stored = await conn.fetchrow(
            "SELECT id::text, key_hash FROM api_keys WHERE key_hash = $1",
            hashlib.sha256(key.encode()).hexdigest(),
        )
        in_log = await conn.fetchval(
            "SELECT count(*) FROM events WHERE data::text LIKE $1", "%sftq_%"
        )
        actors = await conn.fetch("SELECT DISTINCT metadata->>'actor' FROM events")
    finally:
        await conn.close()
    assert key not in listed.out and stored not in listed.out and key_id in listed.out
    assert in_log == 0  # never the plaintext
    assert all(a[0].startswith("cli:") for a in actors)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = await db.start("serve", "--port", str(port), "--no-scheduler")
    await wait_for(lambda: healthy(url), "ftq serve", server)
    assert (await http("GET", f"{url}/jobs", key))[0] == 200

    revoked = await db.run("keys", "revoke", key_id)
    assert revoked.code == 0, revoked.err
    status, body = await http("GET", f"{url}/jobs", key)
    assert status == 401, body
    assert (await db.run("keys", "revoke", "no-such-key")).code != 0


async def test_serve_without_fireworks_key_exits_2_naming_it(env: Env, db_url: str) -> None:
    result = await env.with_(DATABASE_URL=db_url).run("serve", "--port", str(free_port()))
    assert result.code == 2
    assert "FIREWORKS_API_KEY" in result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


async def test_users_cap_and_list(env: Env, db_url: str) -> None:
    db = env.with_(DATABASE_URL=db_url)
    assert (await db.run("users", "add", "Bo@E2E.test")).code == 0
    assert (await db.run("users", "cap", "bo@e2e.test", "3")).code == 0
    listed = await db.run("users", "list")
    assert "bo@e2e.test" in listed.out and " 3 " in listed.out
    assert (await db.run("users", "cap", "bo@e2e.test", "default")).code == 0
    big = await db.run("users", "cap", "bo@e2e.test", "none", "--class", "big")
    assert big.code == 0 and "big cap of bo@e2e.test set to no cap" in big.out
    assert (await db.run("users", "share", "bo@e2e.test", "2.5")).code == 0
    assert (await db.run("users", "max-priority", "bo@e2e.test", "80")).code == 0
    listed = await db.run("users", "list")
    line = next(x for x in listed.out.splitlines() if "bo@e2e.test" in x)
    assert " none " in line and " 2.5 " in line and " 80 " in line
    for bad in (("cap", "bo@e2e.test", "2", "--class", "huge"), ("share", "bo@e2e.test", "0"),
                ("max-priority", "bo@e2e.test", "101")):  # fmt: skip
        refused = await db.run("users", *bad)
        assert refused.code == 2 and "Traceback" not in refused.err, refused.err
    missing = await db.run("users", "cap", "nobody@e2e.test", "2")
    assert missing.code == 1 and "NOT_FOUND" in missing.err
    duplicate = await db.run("users", "add", "bo@e2e.test")
    assert duplicate.code == 1 and "CONFLICT: " in duplicate.err


async def test_scheduler_pause_and_resume_are_recorded(
    env: Env, db_url: str, pool: asyncpg.Pool
) -> None:
    db = env.with_(DATABASE_URL=db_url)
    paused = await db.run("scheduler", "pause", "--reason", "maintenance")
    assert paused.code == 0, paused.err
    assert await pool.fetchval("SELECT paused FROM scheduler_state") is True
    assert (await db.run("scheduler", "pause")).code == 0  # idempotent: records nothing more
    resumed = await db.run("scheduler", "resume")
    assert resumed.code == 0, resumed.err
    assert await pool.fetchval("SELECT paused FROM scheduler_state") is False
    rows = await pool.fetch("SELECT type, data FROM events WHERE stream_id = 'scheduler'")
    assert [r["type"] for r in rows] == ["scheduler.paused", "scheduler.resumed"]
    assert '"maintenance"' in rows[0]["data"]
