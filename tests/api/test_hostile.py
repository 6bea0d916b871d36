"""Hostile input: whatever a client sends, ftq answers with a 4xx (never a 5xx) and never
hangs. Body-level cases go through the in-process app; header, query-string and slow-reader
cases go through a real `ftq serve` over raw sockets, so the HTTP server layer is covered."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import psutil
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import Users, bearer, make_user, sft
from tests.e2e.conftest import Env, Proc, free_port, healthy, wait_for

pytestmark = pytest.mark.timeout(90)


def _no_5xx(status: int, body: Any = None) -> None:
    assert status < 500, (status, body)


# -- bodies ------------------------------------------------------------------------------


async def test_huge_body_is_413(app_client: AsyncTestClient[Litestar], users: Users) -> None:
    big = sft(display_name="x")
    big["fireworks_payload"]["blob"] = "a" * (1024 * 1024 + 10)
    resp = await app_client.post("/jobs", json=big, headers=bearer(users.alice))
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # and a lying Content-Length with a huge body
    raw = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    resp = await app_client.post(
        "/jobs", content=raw, headers={**bearer(users.alice), "Content-Type": "application/json"}
    )
    assert resp.status_code == 413, resp.text


@pytest.mark.parametrize("depth", [64, 1000, 100_000])
async def test_deeply_nested_bodies(
    app_client: AsyncTestClient[Litestar], users: Users, depth: int
) -> None:
    nested = "[" * depth + "]" * depth
    for raw in (
        nested,
        '{"kind": "SFT", "fireworks_payload": {"dataset": "d", "baseModel": "m", "x": '
        + nested
        + "}}",
        '{"a":' * depth + "1" + "}" * depth,
    ):
        resp = await app_client.post(
            "/jobs",
            content=raw.encode(),
            headers={**bearer(users.alice), "Content-Type": "application/json"},
        )
        _no_5xx(resp.status_code, resp.text)
        if resp.status_code >= 400:
            assert "error" in resp.json()


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00garbage",
        b'{"kind": "SFT", "display_name": "\xc3\x28", "fireworks_payload": {}}',
        b'{"kind": "\xed\xa0\x80"}',
        b"\x00" * 100,
        b"",
        b"null",
        b"[]",
        b'"just a string"',
        b'{"kind": "SFT", "fireworks_payload": {"dataset": "d", "baseModel": "\\ud800"}}',
        b'{"kind": "SFT", "gpu_count": 1e999, "fireworks_payload": {}}',
        b'{"kind": "SFT", "gpu_count": 99999999999999999999999, "fireworks_payload": {}}',
    ],
)
async def test_malformed_bodies(
    app_client: AsyncTestClient[Litestar], users: Users, raw: bytes
) -> None:
    for content_type in ("application/json", "text/plain", "application/octet-stream"):
        resp = await app_client.post(
            "/jobs", content=raw, headers={**bearer(users.alice), "Content-Type": content_type}
        )
        _no_5xx(resp.status_code, resp.text)
        assert resp.status_code != 201 or raw.startswith(b'{"kind": "SFT", "fireworks_payload')


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "a" * 5000,
        "%00",
        base64.urlsafe_b64encode(b"garbage").decode(),
        base64.urlsafe_b64encode(b'["2024-01-01T00:00:00Z", "not-a-uuid"]').decode(),
        base64.urlsafe_b64encode(b'{"created_at": 1, "id": []}').decode(),
        base64.urlsafe_b64encode(b"\xff" * 40).decode(),
        base64.urlsafe_b64encode(json.dumps(["9999-99-99", "0" * 36]).encode()).decode(),
    ],
)
async def test_invalid_cursors(
    app_client: AsyncTestClient[Litestar], users: Users, cursor: str
) -> None:
    resp = await app_client.get("/jobs", params={"cursor": cursor}, headers=bearer(users.alice))
    _no_5xx(resp.status_code, resp.text)
    if cursor:
        assert resp.status_code == 400, resp.text


async def test_odd_query_values(app_client: AsyncTestClient[Litestar], users: Users) -> None:
    for params in (
        {"limit": "-1"},
        {"limit": "1e9"},
        {"limit": "99999999999999999999"},
        {"state": "\x00"},
        {"kind": "' OR 1=1 --"},
        {"user": "a" * 10_000},
        {"after": "-5"},
        {"after": "abc"},
    ):
        for path in ("/jobs", "/queue", "/jobs/not-a-uuid", "/jobs/00000000-0000-0000-0000-0"):
            resp = await app_client.get(path, params=params, headers=bearer(users.admin))
            _no_5xx(resp.status_code, resp.text)


# -- a real server: raw HTTP -----------------------------------------------------------------


@pytest.fixture
async def served(
    tmp_path: Any, db_url: str, pool: asyncpg.Pool
) -> AsyncIterator[tuple[str, str, Proc]]:
    """A real `ftq serve` (in-process simulator, no admission loop) and a member's key."""
    env = Env(tmp_path, DATABASE_URL=db_url, FIREWORKS_BASE_URL="simulator")
    _, key = await make_user(pool, "hostile@example.com")
    port = free_port()
    proc = await env.start("serve", "--port", str(port), "--no-scheduler")
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for(lambda: healthy(url), "ftq serve", proc)
        yield url, key, proc
    finally:
        await env.stop_all()


async def _raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:200]
    return int(response.split(b" ", 2)[1])


async def test_header_injection_and_long_query(served: tuple[str, str, Proc]) -> None:
    url, key, _proc = served
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps(sft()).encode()

    def post(idem: bytes) -> bytes:
        return (
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + b"Authorization: Bearer "
            + key.encode()
            + b"\r\nIdempotency-Key: "
            + idem
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )

    for idem in (
        b"abc\rSet-Cookie: pwned=1",
        b"abc\nX-Injected: 1",
        "clé-ünïcødé".encode(),
        "clé".encode("latin-1"),
        b"\x00\x01",
        b"k" * 300,
        b"k" * 70_000,
        b" ",
    ):
        response = await _raw(port, post(idem))
        status = _status(response)
        _no_5xx(status, response[:300])
        # A bare LF ends the header line (HTTP/1.1 parsers accept it): that request is a key
        # "abc" plus a header of its own, not an injection. A blank key is no key at all.
        assert status != 201 or idem in (b"abc\nX-Injected: 1", b" "), (idem[:40], response[:300])
        head = response.split(b"\r\n\r\n", 1)[0].lower()
        assert b"pwned" not in head and b"x-injected" not in head
    # a valid key still works afterwards
    response = await _raw(port, post(b"good-key-1"))
    assert _status(response) == 201, response[:300]

    for length in (8_000, 100_000, 1_000_000):
        request = (
            b"GET /jobs?state=" + b"A" * length + b" HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            response = await _raw(port, request)
            if response:
                _no_5xx(_status(response), response[:300])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for last_id in ("-1", "abc", "1" * 40, "1e9", "0x10", " ", "9" * 18):
            for path in ("/events/stream", "/events/stream?after=-5", "/events/stream?after=x"):
                headers = {"Authorization": f"Bearer {key}", "Last-Event-ID": last_id}
                async with session.get(f"{url}{path}", headers=headers) as resp:
                    _no_5xx(resp.status, last_id)  # 200 streams on; 400 refuses: both fine
        async with session.get(f"{url}/healthz") as resp:
            assert resp.status == 200


async def test_slow_sse_clients_are_bounded(
    served: tuple[str, str, Proc], pool: asyncpg.Pool
) -> None:
    """Clients that open the live history stream and never read: the server's memory stays
    bounded while the log grows by tens of MB, and other clients are served promptly."""
    url, key, proc = served
    port = int(url.rsplit(":", 1)[1])
    server = psutil.Process(proc.proc.pid)
    slow: list[socket.socket] = []
    for n in range(6):
        accept = b"application/x-ndjson" if n % 3 == 2 else b"text/event-stream"
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(
            b"GET /events/stream?after=0 HTTP/1.1\r\nHost: x\r\nAccept: " + accept + b"\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\n\r\n"
        )
        slow.append(sock)
    try:
        await asyncio.sleep(1)
        rss_before = server.memory_info().rss
        payload = sft(display_name="big")
        payload["fireworks_payload"]["notes"] = "n" * 500_000
        async with aiohttp.ClientSession() as session:
            latencies = []
            for _ in range(40):  # ~20 MB of events each slow client should be sent
                t0 = time.monotonic()
                async with session.post(f"{url}/jobs", json=payload, headers=bearer(key)) as resp:
                    assert resp.status == 201, await resp.text()
                latencies.append(time.monotonic() - t0)
            await asyncio.sleep(1)
            t0 = time.monotonic()
            async with session.get(f"{url}/jobs?limit=5", headers=bearer(key)) as resp:
                assert resp.status == 200
            assert time.monotonic() - t0 < 5
        rss_after = server.memory_info().rss
        grown = (rss_after - rss_before) / 1e6
        # 6 readers (SSE and NDJSON) x 20 MB would be 120 MB if buffered; allow headroom for caches
        assert grown < 60, f"server RSS grew by {grown:.0f} MB"
        assert max(latencies) < 5, latencies
    finally:
        for sock in slow:
            sock.close()
    assert proc.proc.returncode is None
