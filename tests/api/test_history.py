"""History routes against the real app served by uvicorn in-process, read with aiohttp:
GET /jobs/{id}/events, GET /jobs/{id}/events/stream (SSE) and GET /events/stream (SSE,
NDJSON). Every stream read is bounded by a timeout so nothing can hang."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
import uvicorn
from litestar import Litestar
from prometheus_client.parser import text_string_to_metric_families

from events.domain.job import JOB
from events.domain.job_commands import ConfirmAdmission, ObserveFireworks, StartAdmission, SubmitJob
from events.domain.job_events import AdmissionReason
from service.api.runtime import Runtime
from service.api.streams import HEARTBEAT_STATE_KEY
from service.commands import run_command
from tests.api.conftest import META, SFT_PAYLOAD, Users, bearer, make_user

SECRET = "wandb-secret-value-123"
READ_S = 5.0
REASON = AdmissionReason(policy="strict-fifo", quota=8, in_use=0, available=8, queue_position=1)


@pytest.fixture
async def server(app: Litestar) -> AsyncIterator[str]:
    """The app on 127.0.0.1 (a free port), heartbeats every 0.3 s; yields the base URL."""
    app.state[HEARTBEAT_STATE_KEY] = 0.3
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="on"
    )
    config.timeout_graceful_shutdown = 2
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    async with asyncio.timeout(30):
        while not srv.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    port = srv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        async with asyncio.timeout(15):
            await task


@pytest.fixture
async def http(server: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server) as session:
        yield session


@pytest.fixture
async def people(pool: asyncpg.Pool, server: str) -> Users:
    _, admin = await make_user(pool, "root@example.com", "admin")
    alice_id, alice = await make_user(pool, "alice@example.com")
    bob_id, bob = await make_user(pool, "bob@example.com")
    return Users(admin=admin, alice=alice, bob=bob, alice_id=alice_id, bob_id=bob_id)


def runtime_of_app(app: Litestar) -> Runtime:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


async def submit(http: aiohttp.ClientSession, key: str) -> str:
    payload = {**SFT_PAYLOAD, "wandbConfig": {"apiKey": SECRET, "project": "p"}}
    async with http.post(
        "/jobs", json={"kind": "SFT", "fireworks_payload": payload}, headers=bearer(key)
    ) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])


async def cancel(http: aiohttp.ClientSession, key: str, job_id: str) -> None:
    async with http.delete(f"/jobs/{job_id}", headers=bearer(key)) as resp:
        assert resp.status == 200, await resp.text()


async def admit(pool: asyncpg.Pool, job_id: str) -> None:
    now = datetime.now(UTC)
    name = f"accounts/ftq/supervisedFineTuningJobs/{job_id[:8]}"
    command = StartAdmission(
        at=now, fireworks_job_id=job_id[:8], fireworks_job_name=name, reason=REASON
    )
    await run_command(pool, JOB, job_id, command, META)


def _now() -> datetime:
    return datetime.now(UTC)


class Frames:
    """Frames of an open SSE or NDJSON response, each read within a timeout."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def _line(self) -> str | None:
        async with asyncio.timeout(READ_S):
            raw = await self.resp.content.readline()
        return None if raw == b"" else raw.decode().rstrip("\n")

    async def sse(self) -> dict[str, str] | None:
        """The next SSE frame (`comment` for keepalives); None at the end of the stream."""
        frame: dict[str, str] = {}
        while True:
            line = await self._line()
            if line is None:
                return frame or None
            if line == "":
                if frame:
                    return frame
                continue
            field, _, value = line.partition(":")
            frame[field or "comment"] = value.removeprefix(" ")

    async def event(self) -> dict[str, Any]:
        """The next SSE event, skipping keepalives."""
        while True:
            frame = await self.sse()
            assert frame is not None, "stream ended"
            if "comment" not in frame:
                assert frame["id"] == str(json.loads(frame["data"])["position"])
                assert frame["event"] == json.loads(frame["data"])["type"]
                return dict(json.loads(frame["data"]))

    async def ndjson(self, *, heartbeats: bool = False) -> dict[str, Any]:
        while True:
            line = await self._line()
            assert line is not None, "stream ended"
            item = json.loads(line)
            if heartbeats or item != {"type": "heartbeat"}:
                return dict(item)

    async def quiet(self, seconds: float = 0.8) -> list[dict[str, Any]]:
        """The SSE events (not keepalives) arriving within `seconds`."""
        out: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    out.append(await self.event())
        return out


@contextlib.asynccontextmanager
async def open_stream(
    http: aiohttp.ClientSession, path: str, key: str, **headers: str
) -> AsyncIterator[Frames]:
    async with http.get(path, headers={**bearer(key), **headers}) as resp:
        assert resp.status == 200, await resp.text()
        yield Frames(resp)


async def test_history_is_ordered_shaped_and_redacted(
    http: aiohttp.ClientSession, people: Users
) -> None:
    job_id = await submit(http, people.alice)
    await cancel(http, people.alice, job_id)
    async with http.get(f"/jobs/{job_id}/events", headers=bearer(people.alice)) as resp:
        assert resp.status == 200
        text = await resp.text()
    events = json.loads(text)
    assert [e["type"] for e in events] == ["job.submitted", "job.cancelled"]
    assert [e["version"] for e in events] == [1, 2]
    assert events[0]["position"] < events[1]["position"]
    keys = {"position", "version", "type", "recorded_at", "job_id", "data"}
    assert all(set(e) == keys and e["job_id"] == job_id for e in events)
    assert datetime.fromisoformat(events[0]["recorded_at"]).tzinfo is not None
    submitted = events[0]["data"]
    assert submitted["job_id"] == job_id and "type" not in submitted
    assert submitted["fireworks_payload"]["wandbConfig"] == {"apiKey": "***", "project": "p"}
    assert SECRET not in text


async def test_history_of_another_users_job_is_404(
    http: aiohttp.ClientSession, people: Users
) -> None:
    job_id = await submit(http, people.alice)
    for path in (f"/jobs/{job_id}/events", f"/jobs/{job_id}/events/stream"):
        async with http.get(path, headers=bearer(people.bob)) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "NOT_FOUND"
    for bad in ("not-a-uuid", str(uuid.uuid4()), "%20"):
        async with http.get(f"/jobs/{bad}/events", headers=bearer(people.admin)) as resp:
            assert resp.status == 404, bad
            assert (await resp.json())["error"]["code"] == "NOT_FOUND"
    async with http.get(f"/jobs/{job_id}/events", headers=bearer(people.admin)) as resp:
        assert resp.status == 200
    async with http.get(f"/jobs/{job_id}/events") as resp:
        assert resp.status == 401
    legacy = f"/functions/v1/jobs-api/jobs/{job_id}/events"
    async with http.get(legacy, headers=bearer(people.alice)) as resp:
        assert resp.status == 200


async def test_job_stream_goes_live_and_resumes_with_last_event_id(
    http: aiohttp.ClientSession, people: Users, pool: asyncpg.Pool
) -> None:
    job_id = await submit(http, people.alice)
    path = f"/jobs/{job_id}/events/stream"
    async with open_stream(http, path, people.alice) as frames:
        assert frames.resp.headers["Content-Type"].startswith("text/event-stream")
        first = await frames.event()
        assert first["type"] == "job.submitted"
        assert first["data"]["fireworks_payload"]["wandbConfig"]["apiKey"] == "***"
        await admit(pool, job_id)  # appended after the client connected
        live = await frames.event()
        assert live["type"] == "job.admission_started" and live["version"] == 2
    # Appended while nobody listens; the reconnect must give exactly this, then go live.
    await run_command(pool, JOB, job_id, ConfirmAdmission(at=_now()), META)
    resume = {"Last-Event-ID": str(live["position"])}
    async with open_stream(http, path, people.alice, **resume) as frames:
        missed = await frames.event()
        assert missed["type"] == "job.admitted" and missed["version"] == 3
        assert await frames.quiet(0.5) == []  # nothing repeated
        observe = ObserveFireworks(at=_now(), fireworks_state="JOB_STATE_RUNNING", progress=10)
        await run_command(pool, JOB, job_id, observe, META)
        observed = await frames.event()
        assert observed["type"] == "job.fireworks_state_observed"
        assert observed["data"]["progress"] == 10


async def test_job_stream_ends_when_the_job_is_terminal(
    http: aiohttp.ClientSession, people: Users
) -> None:
    job_id = await submit(http, people.alice)
    path = f"/jobs/{job_id}/events/stream"
    async with open_stream(http, path, people.alice) as frames:
        assert (await frames.event())["type"] == "job.submitted"
        await cancel(http, people.alice, job_id)  # live, terminal
        last = await frames.event()
        assert last["type"] == "job.cancelled"
        while (frame := await frames.sse()) is not None:  # ends (keepalives meanwhile)
            assert "comment" in frame
    # A terminal job's stream gives the history and ends at once.
    async with open_stream(http, path, people.alice) as frames:
        seen = []
        while (frame := await frames.sse()) is not None:
            if "comment" not in frame:
                seen.append(json.loads(frame["data"])["version"])
        assert seen == [1, 2]
    resume = {"Last-Event-ID": str(last["position"])}
    async with open_stream(http, path, people.alice, **resume) as frames:
        assert await frames.sse() is None


async def test_log_stream_resumes_with_last_event_id_without_loss_or_repeat(
    http: aiohttp.ClientSession, people: Users, pool: asyncpg.Pool
) -> None:
    first_job = await submit(http, people.alice)
    seen: list[int] = []
    async with open_stream(http, "/events/stream", people.admin) as frames:
        total = await pool.fetchval("SELECT count(*) FROM events")
        while len(seen) < total:
            seen.append((await frames.event())["position"])
        await cancel(http, people.alice, first_job)  # live
        live = await frames.event()
        assert live["type"] == "job.cancelled"
        seen.append(live["position"])
    # Meanwhile: several concurrent writers.
    jobs = await asyncio.gather(*(submit(http, k) for k in (people.alice, people.bob) * 3))
    # ?after=0 is what the client first asked for; Last-Event-ID (the reconnect) wins.
    async with open_stream(
        http, "/events/stream?after=0", people.admin, **{"Last-Event-ID": str(seen[-1])}
    ) as frames:
        total = await pool.fetchval("SELECT count(*) FROM events")
        while len(seen) < total:
            seen.append((await frames.event())["position"])
        await cancel(http, people.bob, jobs[1])
        seen.append((await frames.event())["position"])
        assert await frames.quiet(0.5) == []
    everything = [r[0] for r in await pool.fetch("SELECT position FROM events")]
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(everything)


async def test_admin_sees_everything_but_key_hashes(
    http: aiohttp.ClientSession, people: Users
) -> None:
    job_id = await submit(http, people.bob)
    async with open_stream(http, "/events/stream", people.admin) as frames:
        assert frames.resp.headers["Content-Type"].startswith("text/event-stream")
        assert frames.resp.headers["Cache-Control"] == "no-cache"
        events = [await frames.event() for _ in range(7)]  # 3 users, 3 keys, 1 job
    types = [e["type"] for e in events]
    assert types.count("user.added") == 3 and types.count("key.issued") == 3
    assert events[-1]["data"]["job_id"] == job_id
    for issued in (e for e in events if e["type"] == "key.issued"):
        assert "key_hash" not in issued["data"] and issued["data"]["key_id"]


async def test_member_sees_only_own_jobs_as_ndjson_with_filters(
    http: aiohttp.ClientSession, people: Users
) -> None:
    mine = await submit(http, people.alice)
    await submit(http, people.bob)
    ndjson = {"Accept": "application/x-ndjson"}
    async with open_stream(http, "/events/stream", people.alice, **ndjson) as frames:
        assert frames.resp.headers["Content-Type"].startswith("application/x-ndjson")
        first = await frames.ndjson()
        assert set(first) == {"position", "version", "type", "recorded_at", "job_id", "data"}
        assert first["type"] == "job.submitted" and first["data"]["job_id"] == mine
        await submit(http, people.bob)  # live, not hers
        later = await submit(http, people.alice)  # live, submitted after the stream began
        nxt = await frames.ndjson()
        assert nxt["data"]["job_id"] == later
        assert nxt["data"]["fireworks_payload"]["wandbConfig"]["apiKey"] == "***"
    filtered = f"/events/stream?type=job.cancelled&job={mine}&job={later}"
    async with open_stream(http, filtered, people.alice, **ndjson) as frames:
        await cancel(http, people.alice, later)
        await cancel(http, people.alice, mine)
        got = [await frames.ndjson(), await frames.ndjson()]
        assert [(e["type"], e["version"]) for e in got] == [("job.cancelled", 2)] * 2
        assert got[0]["position"] != got[1]["position"]
    both = f"/events/stream?type=job.submitted,job.cancelled&job={later}"
    async with open_stream(http, both, people.bob, **ndjson) as frames:
        item = await frames.ndjson(heartbeats=True)
        assert item == {"type": "heartbeat"}  # bob may not see alice's job: only heartbeats


async def test_stream_parameters_are_checked(http: aiohttp.ClientSession, people: Users) -> None:
    cases = [
        "/events/stream?after=999999",
        "/events/stream?after=abc",
        "/events/stream?after=-1",
        "/events/stream?type=job.nope",
        "/events/stream?job=not-a-uuid",
    ]
    for path in cases:
        async with http.get(path, headers=bearer(people.alice)) as resp:
            assert resp.status == 400, path
            assert (await resp.json())["error"]["code"] == "VALIDATION_ERROR"
    headers = {**bearer(people.alice), "Last-Event-ID": "12x"}
    async with http.get("/events/stream", headers=headers) as resp:
        assert resp.status == 400
    async with http.get("/events/stream") as resp:
        assert resp.status == 401


async def stream_clients(http: aiohttp.ClientSession) -> float:
    """`ftq_stream_clients` as GET /metrics shows it to an operator's scraper."""
    async with http.get("/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        if family.name == "ftq_stream_clients":
            return float(family.samples[0].value)
    raise AssertionError(f"no ftq_stream_clients in /metrics: {text[:500]}")


async def test_heartbeats_and_disconnect_cleanup(
    app: Litestar, http: aiohttp.ClientSession, people: Users, pool: asyncpg.Pool
) -> None:
    watcher = runtime_of_app(app).watcher
    subscribers = watcher.subscribers
    clients = await stream_clients(http)
    head = await pool.fetchval("SELECT max(position) FROM events")
    async with open_stream(http, f"/events/stream?after={head}", people.admin) as frames:
        assert await frames.sse() == {"comment": "keepalive"}
        assert await frames.sse() == {"comment": "keepalive"}
        assert await stream_clients(http) == clients + 1
        assert watcher.subscribers == subscribers + 1
    async with asyncio.timeout(READ_S):
        while await stream_clients(http) != clients or watcher.subscribers != subscribers:
            await asyncio.sleep(0.05)


async def test_many_events_arrive_in_batches_in_log_order(
    http: aiohttp.ClientSession, people: Users, pool: asyncpg.Pool
) -> None:
    for _ in range(4):
        await asyncio.gather(*(submit(http, people.alice) for _ in range(40)))
    total = await pool.fetchval("SELECT count(*) FROM events")
    order = [
        r[0]
        for r in await pool.fetch("SELECT position FROM events ORDER BY transaction_id, position")
    ]
    async with open_stream(http, "/events/stream", people.admin) as frames:
        got = [(await frames.event())["position"] for _ in range(total)]
    assert got == order
    assert msgspec.json.encode(got)  # plain ints


async def test_a_stalled_client_is_cleaned_up_on_disconnect(
    http: aiohttp.ClientSession, people: Users, pool: asyncpg.Pool
) -> None:
    """A client that stops reading blocks the server in `send` (backpressure, nothing read
    ahead); when it goes away the stream still closes its subscription and the gauge."""
    big = {**SFT_PAYLOAD, "notes": "x" * 400_000}
    for _ in range(30):  # ~12 MB of history: more than the socket buffers hold
        job_id = str(uuid.uuid4())
        command = SubmitJob(
            at=_now(),
            job_id=job_id,
            user_id=people.alice_id,
            user_email="alice@example.com",
            kind="SFT",
            display_name=None,
            gpu_count=1,
            fireworks_payload=big,
        )
        await run_command(pool, JOB, job_id, command, META)
    clients = await stream_clients(http)
    async with http.get("/events/stream", headers=bearer(people.admin)) as resp:
        assert resp.status == 200
        await resp.content.readline()  # started; then stall
        await asyncio.sleep(1.0)
        assert await stream_clients(http) == clients + 1
        resp.close()
    async with asyncio.timeout(READ_S):
        while await stream_clients(http) != clients:
            await asyncio.sleep(0.05)


async def test_every_history_item_names_its_job_and_admins_see_its_owner(
    http: aiohttp.ClientSession, people: Users, pool: asyncpg.Pool
) -> None:
    """Issue 13 item 2: with two jobs interleaved, each item says whose job it is."""
    first, second = await submit(http, people.alice), await submit(http, people.bob)
    await admit(pool, first)
    await cancel(http, people.bob, second)
    owners = {first: "alice@example.com", second: "bob@example.com"}
    ndjson = {"Accept": "application/x-ndjson"}
    types = "job.submitted,job.admission_started,job.cancelled"
    async with open_stream(http, f"/events/stream?type={types}", people.admin, **ndjson) as frames:
        got = [await frames.ndjson() for _ in range(4)]
    assert {(e["type"], e["job_id"], e["user"]) for e in got} >= {
        ("job.submitted", first, owners[first]),
        ("job.submitted", second, owners[second]),
        ("job.cancelled", second, owners[second]),
    }
    async with open_stream(http, "/events/stream", people.admin) as frames:
        events = [await frames.event() for _ in range(10)]
    for event in events:
        if event["type"].startswith("job."):
            assert owners[event["job_id"]] == event["user"], event
        else:
            assert "job_id" not in event and "user" not in event
    async with open_stream(http, "/events/stream", people.alice, **ndjson) as frames:
        mine = [await frames.ndjson() for _ in range(2)]
    assert all(e["job_id"] == first and "user" not in e for e in mine)
    for key, user in ((people.admin, owners[first]), (people.alice, None)):
        async with http.get(f"/jobs/{first}/events", headers=bearer(key)) as resp:
            history = await resp.json()
        assert all(e["job_id"] == first and e.get("user") == user for e in history)
    async with open_stream(http, f"/jobs/{second}/events/stream", people.admin) as frames:
        live = await frames.event()
    assert (live["job_id"], live["user"]) == (second, owners[second])
