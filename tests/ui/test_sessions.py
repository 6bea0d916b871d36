"""Dashboard sessions, CSRF and bad input over plain HTTP against a running ftq (no browser
needed): cookies, revocation, expiry, the stream cookie rule, and 400/403/404 answers in
the error shape that change nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from service import directory
from tests.ui.conftest import META, SFT, Users

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browserish:
    """An HTTP client with a cookie jar, as a browser without JavaScript would be."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def sign_in(self, key: str) -> str:
        async with self.http.post(
            f"{self.base}/ui/login", data={"key": key}, allow_redirects=False
        ) as r:
            assert r.status == 303 and r.headers["Location"] == "/ui/queue"
        page = await self.text("/ui/queue")
        found = CSRF.search(page)
        assert found
        return found.group(1)

    async def text(self, path: str, status: int = 200) -> str:
        async with self.http.get(self.base + path, allow_redirects=False) as r:
            assert r.status == status, (r.status, await r.text())
            return await r.text()

    async def post(self, path: str, form: dict[str, str]) -> tuple[int, Any]:
        async with self.http.post(self.base + path, data=form, allow_redirects=False) as r:
            is_json = r.content_type == "application/json"
            return r.status, (await r.json() if is_json else await r.text())

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def web(server: str) -> AsyncIterator[Browserish]:
    client = Browserish(server)
    yield client
    await client.close()


async def _api(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, base + path, json=body, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        assert r.status < 300, await r.text()
        return await r.json()


async def _count(pool: asyncpg.Pool, sql: str) -> int:
    return int(await pool.fetchval(sql))


async def test_a_bad_or_revoked_key_gets_the_form_again_and_no_session(
    web: Browserish, users: Users, pool: asyncpg.Pool
) -> None:
    revoked = await directory.issue_key(pool, "alice@example.com", "old", META)
    await directory.revoke_key(pool, revoked.id, META)
    for key in ("", "nonsense", "sftq_" + "B" * 43, revoked.key, "x" * 5000):
        status, page = await web.post("/ui/login", {"key": key})
        assert status == 401 and "not valid, or it has been revoked" in page
        assert '<input id="key" name="key"' in page
    assert len(web.http.cookie_jar) == 0
    assert await _count(pool, "SELECT count(*) FROM ui_sessions") == 0


async def test_the_cookie_is_httponly_strict_expiring_and_secure_behind_tls(
    server: str, users: Users, pool: asyncpg.Pool
) -> None:
    async with aiohttp.ClientSession() as s:
        for proto, secure in (("http", False), ("https", True)):
            async with s.post(
                f"{server}/ui/login",
                data={"key": users.alice},
                headers={"X-Forwarded-Proto": proto},
                allow_redirects=False,
            ) as r:
                cookie = r.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
                assert "Max-Age=43200" in cookie and ("Secure" in cookie) is secure
    stored = await pool.fetch("SELECT token_hash FROM ui_sessions")
    assert len(stored) == 2 and all(len(r[0]) == 64 for r in stored)  # only SHA-256 digests


async def test_revoking_the_key_ends_the_session_at_once(
    web: Browserish, server: str, pool: asyncpg.Pool
) -> None:
    await directory.add_user(pool, "carol@example.com", "member", META)
    issued = await directory.issue_key(pool, "carol@example.com", "ui", META)
    await web.sign_in(issued.key)
    await web.text("/ui/jobs")
    await directory.revoke_key(pool, issued.id, META)
    await web.text("/ui/jobs", status=303)
    async with web.http.get(f"{server}/events/stream", allow_redirects=False) as r:
        assert r.status == 401


async def test_an_expired_session_is_no_session(
    web: Browserish, users: Users, pool: asyncpg.Pool
) -> None:
    await web.sign_in(users.alice)
    await pool.execute("UPDATE ui_sessions SET expires_at = now() - interval '1 second'")
    await web.text("/ui/queue", status=303)


async def test_the_session_cookie_opens_streams_for_get_without_authorization_only(
    web: Browserish, server: str, users: Users
) -> None:
    await web.sign_in(users.alice)
    headers = {"Accept": "application/x-ndjson"}
    async with web.http.get(f"{server}/events/stream", headers=headers) as r:
        assert r.status == 200
    async with web.http.get(f"{server}/jobs") as r:  # not a stream: the cookie is no key
        assert r.status == 401
    async with web.http.post(f"{server}/jobs", json=SFT) as r:
        assert r.status == 401
    bad = {"Authorization": "Bearer sftq_" + "C" * 43}
    async with web.http.get(f"{server}/events/stream", headers=bad) as r:
        assert r.status == 401  # a header given is the one that counts


async def test_a_forged_or_missing_csrf_token_is_403_and_changes_nothing(
    web: Browserish, server: str, users: Users, pool: asyncpg.Pool
) -> None:
    job = await _api(server, users.admin, "POST", "/admin/scheduler/pause", {"reason": "hold"})
    job = await _api(server, users.admin, "POST", "/jobs", SFT)
    csrf = await web.sign_in(users.admin)
    before = await _count(pool, "SELECT count(*) FROM events")
    for form in ({}, {"csrf": "forged"}, {"csrf": csrf[:-1]}):
        for path in ("/ui/scheduler/resume", f"/ui/jobs/{job['id']}/cancel", "/ui/logout"):
            status, body = await web.post(path, form)
            assert status == 403, (path, form)
            assert body["error"]["code"] == "FORBIDDEN" and "CSRF" in body["error"]["message"]
    assert await _count(pool, "SELECT count(*) FROM events") == before
    assert (await _api(server, users.admin, "GET", f"/jobs/{job['id']}"))["state"] == "QUEUED"
    await web.text("/ui/queue")  # still signed in: logout was refused too
    status, _ = await web.post("/ui/logout", {"csrf": csrf})
    assert status == 303
    await web.text("/ui/queue", status=303)


async def test_bad_input_on_pages_is_a_clear_error_never_a_500(
    web: Browserish, server: str, users: Users
) -> None:
    await _api(server, users.admin, "POST", "/admin/scheduler/pause", {"reason": "hold"})
    bobs = await _api(server, users.bob, "POST", "/jobs", SFT)
    csrf = await web.sign_in(users.alice)
    for path in (
        "/ui/jobs?state=NOPE",
        "/ui/jobs?kind=XYZ",
        "/ui/jobs?after=garbage",
        "/ui/jobs?q=" + "a" * 201,
        "/ui/usage/data?chart=nope",
        "/ui/usage/data?chart=gpus&range=year",
    ):
        async with web.http.get(server + path, allow_redirects=False) as r:
            assert r.status == 400, path
            assert (await r.json())["error"]["code"] == "VALIDATION_ERROR"
    for path in (
        f"/ui/jobs/{bobs['id']}",
        f"/ui/jobs/{bobs['id']}/body",
        "/ui/jobs/not-a-uuid",
        "/ui/scheduler",
    ):
        await web.text(path, status=404)
    status, _ = await web.post(f"/ui/jobs/{bobs['id']}/cancel", {"csrf": csrf})
    assert status == 404
    assert (await _api(server, users.bob, "GET", f"/jobs/{bobs['id']}"))["state"] == "QUEUED"
    await web.text("/ui/jobs?q=%25_%5C&state=queued")  # LIKE metacharacters are plain text


async def test_jobs_page_filters_in_the_url_and_cursor_pages_newest_first(
    web: Browserish, server: str, users: Users
) -> None:
    await _api(server, users.admin, "POST", "/admin/scheduler/pause", {"reason": "hold"})
    ids = [
        (await _api(server, users.alice, "POST", "/jobs", {**SFT, "display_name": f"run-{i:02}"}))[
            "id"
        ]
        for i in range(55)
    ]
    await web.sign_in(users.alice)
    first = await web.text("/ui/jobs?state=QUEUED&kind=SFT")
    shown = re.findall(r'data-job="([^"]+)"', first)
    assert shown == ids[::-1][:50]  # newest first
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older is not None
    link = older.group(1).replace("&amp;", "&")
    assert "state=QUEUED" in link and "kind=SFT" in link  # the filters stay in the URL
    rest = re.findall(r'data-job="([^"]+)"', await web.text(link))
    assert rest == ids[::-1][50:]
    found = re.findall(r'data-job="([^"]+)"', await web.text("/ui/jobs?q=run-07"))
    assert found == [ids[7]]
    assert re.findall(r'data-job="([^"]+)"', await web.text(f"/ui/jobs?q={ids[3]}")) == [ids[3]]
    assert re.findall(r'data-job="([^"]+)"', await web.text("/ui/jobs?kind=DPO")) == []


async def test_the_queue_page_shows_each_queued_jobs_eta(
    web: Browserish, server: str, users: Users
) -> None:
    await _api(server, users.alice, "POST", "/jobs", SFT)
    second = await _api(server, users.alice, "POST", "/jobs", SFT)  # behind her first: cap 1
    await web.sign_in(users.alice)
    row = re.compile(rf'data-job="{second["id"]}".*?</tr>', re.DOTALL)
    for _ in range(100):  # the forecast is rebuilt in the background after events
        queue = await _api(server, users.alice, "GET", "/queue")
        eta = next((e.get("eta") for e in queue if e["id"] == second["id"]), None)
        if eta:
            break
        await asyncio.sleep(0.2)
    assert eta, queue
    found = row.search(await web.text("/ui/queue/body"))
    assert found is not None
    shown = re.search(r'<time datetime="([^"]+)">in ', found.group(0))
    assert shown is not None, found.group(0)
    assert datetime.fromisoformat(shown.group(1)) == datetime.fromisoformat(eta)
