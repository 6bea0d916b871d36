"""The dashboard in a real browser (headless Chromium): sign-in, privacy, live queue updates,
cancel, usage charts, pause/resume, and no request to anywhere but ftq (checked after every
test by the `pages` fixture). Screenshots go to tests/ui/artifacts/."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.ui.conftest import SFT, Pages, Users, until


async def api(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, base + path, json=body, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        assert r.status < 300, (r.status, await r.text())
        return await r.json()


async def test_sign_in_with_a_good_key_and_refuse_a_bad_one(pages: Pages, users: Users) -> None:
    page = await pages.new()
    await page.goto(f"{pages.base}/ui/queue")
    assert page.url == f"{pages.base}/ui/login"  # not signed in: the form
    await page.fill("input[name=key]", "sftq_" + "A" * 43)
    await page.click("button[type=submit]")
    assert "not valid" in (await page.text_content("[role=alert]") or "")
    assert await page.context.cookies() == []  # no session
    await pages.shot(page, "login-refused")
    await page.fill("input[name=key]", users.alice)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{pages.base}/ui/queue")
    cookie = (await page.context.cookies())[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "alice@example.com" in (await page.text_content("header") or "")
    await pages.shot(page, "queue-empty")
    await page.click("text=Sign out")
    await page.wait_for_url(f"{pages.base}/ui/login")
    await page.goto(f"{pages.base}/ui/jobs")
    assert page.url == f"{pages.base}/ui/login"


async def test_a_member_cannot_see_another_users_job(pages: Pages, users: Users) -> None:
    await api(pages.base, users.admin, "POST", "/admin/scheduler/pause", {"reason": "test"})
    bobs = await api(pages.base, users.bob, "POST", "/jobs", {**SFT, "display_name": "bob-secret"})
    page = await pages.signed_in(users.alice)
    row = page.locator("#queued tbody tr")
    await row.first.wait_for()
    assert "(another user's job)" in (await row.first.text_content() or "")
    assert "bob@example.com" not in await page.content()
    assert await page.locator(f"a[href='/ui/jobs/{bobs['id']}']").count() == 0
    answer = await page.goto(f"{pages.base}/ui/jobs/{bobs['id']}")
    assert answer is not None and answer.status == 404
    await page.goto(f"{pages.base}/ui/jobs")
    assert "bob-secret" not in await page.content()
    await pages.shot(page, "jobs-member")


async def test_a_job_submitted_over_the_api_shows_up_and_goes_live_to_progress(
    pages: Pages, users: Users
) -> None:
    await api(pages.base, users.admin, "POST", "/admin/scheduler/pause", {"reason": "test"})
    page = await pages.signed_in(users.alice)
    await page.evaluate("window.__noReload = true")
    job = await api(pages.base, users.alice, "POST", "/jobs", {**SFT, "display_name": "live-1"})
    queued = page.locator(f"#queued tr[data-job='{job['id']}']")

    async def is_queued() -> bool:
        return await queued.count() == 1

    await until(is_queued)
    await pages.shot(page, "queue-queued")
    await api(pages.base, users.admin, "POST", "/admin/scheduler/resume")
    running = page.locator(f"#running tr[data-job='{job['id']}']")

    async def is_running() -> bool:
        return await running.count() == 1

    await until(is_running)
    assert await page.evaluate("window.__noReload") is True  # no reload happened
    await pages.shot(page, "queue-running")
    narrow = await pages.signed_in(users.alice, width=380)
    await pages.shot(narrow, "queue-narrow")
    wide = await narrow.evaluate("document.documentElement.scrollWidth")
    assert wide <= 400  # the page itself does not scroll sideways; tables scroll in place


async def test_cancel_from_the_job_page(pages: Pages, users: Users) -> None:
    await api(pages.base, users.admin, "POST", "/admin/scheduler/pause", {"reason": "test"})
    job = await api(
        pages.base,
        users.alice,
        "POST",
        "/jobs",
        {**SFT, "display_name": "to-cancel", "fireworks_payload": {**SFT["fireworks_payload"]}},
    )
    page = await pages.signed_in(users.alice)
    await page.goto(f"{pages.base}/ui/jobs/{job['id']}")
    assert await page.text_content("#job-state") == "QUEUED"
    assert "Submitted" in (await page.text_content("#timeline") or "")
    await pages.shot(page, "job-queued")
    await page.keyboard.press("Tab")  # keyboard reachable: open the confirmation by keys
    await page.focus("#cancel summary")
    await page.keyboard.press("Enter")
    await page.click("#confirm-cancel")
    await page.wait_for_url(f"{pages.base}/ui/jobs/{job['id']}")
    assert await page.text_content("#job-state") == "CANCELLED"
    assert "Cancelled" in (await page.text_content("#timeline") or "")
    after = await api(pages.base, users.alice, "GET", f"/jobs/{job['id']}")
    assert after["state"] == "CANCELLED"
    await pages.shot(page, "job-cancelled")


async def test_the_usage_charts_render_with_data(pages: Pages, users: Users) -> None:
    await api(pages.base, users.alice, "POST", "/jobs", {**SFT, "display_name": "use"})

    async def running() -> bool:
        jobs = await api(pages.base, users.alice, "GET", "/jobs")
        return any(j["state"] == "PROGRESS" for j in jobs)

    await until(running, 10)
    page = await pages.signed_in(users.admin)
    await page.goto(f"{pages.base}/ui/usage")
    for name in ("gpus", "depth", "waits", "hours"):
        await page.wait_for_selector(f"figure[data-chart={name}][data-loaded=true]")
    points = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('canvas')].map(c => [c.id,
           Chart.getChart(c).data.datasets[0].data.reduce((a, b) => a + b, 0)]))"""
    )
    assert points["chart-gpus"] > 0 and points["chart-hours"] > 0 and points["chart-waits"] >= 1
    await page.select_option("figure[data-chart=gpus] select", "week")
    await page.wait_for_selector("figure[data-chart=gpus][data-loaded=true]")
    await pages.shot(page, "usage")


async def test_pause_and_resume_as_admin(pages: Pages, users: Users) -> None:
    member = await pages.signed_in(users.bob)
    answer = await member.goto(f"{pages.base}/ui/scheduler")
    assert answer is not None and answer.status == 404
    page = await pages.signed_in(users.admin)
    await page.goto(f"{pages.base}/ui/scheduler")
    assert "running" in (await page.text_content("#paused") or "")
    await page.fill("#reason", "maintenance window")
    await page.click("#pause")
    await page.wait_for_selector("#resume")
    assert "maintenance window" in (await page.text_content("#paused") or "")
    assert (await api(pages.base, users.admin, "GET", "/admin/scheduler"))["paused"] is True
    await pages.shot(page, "scheduler-paused")
    await page.click("#resume")
    await page.wait_for_selector("#pause")
    assert (await api(pages.base, users.admin, "GET", "/admin/scheduler"))["paused"] is False


async def test_every_page_loads_only_from_ftq(pages: Pages, users: Users) -> None:
    job = await api(pages.base, users.admin, "POST", "/jobs", {**SFT, "display_name": "x"})
    page = await pages.signed_in(users.admin)
    for path in (
        "/ui/queue",
        "/ui/jobs?state=QUEUED",
        f"/ui/jobs/{job['id']}",
        "/ui/usage",
        "/ui/scheduler",
    ):
        await page.goto(pages.base + path)
        await page.wait_for_load_state("networkidle")
        await pages.shot(page, path.strip("/").replace("/", "-").split("?")[0])
    assert len(pages.requests) > 10 and pages.foreign() == []
    assert any(u.endswith("/ui/static/chart.umd.min.js") for u in pages.requests)
