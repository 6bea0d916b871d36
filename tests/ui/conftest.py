"""The dashboard tier: the real app served by uvicorn on a free local port (admission loop and
Fireworks simulator on), driven by Debian's headless Chromium through Playwright. Every page
request the browser makes is recorded; each test fails if one left the machine's ftq."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import asyncpg
import msgspec
import pytest
import uvicorn

from service import directory
from service.app import create_app
from service.settings import Settings

CHROMIUM: Final = Path("/usr/bin/chromium")
ARTIFACTS: Final = Path(__file__).parent / "artifacts"
ENABLE: Final = (
    "browser tests need Debian's Chromium: run `apt-get install -y chromium` (as root) and "
    "`pip install -e '.[dev]'` (Playwright), then re-run"
)
META: Final = {"actor": "test"}
SFT: Final[dict[str, Any]] = {
    "kind": "SFT",
    "fireworks_payload": {
        "baseModel": "accounts/fireworks/models/qwen3-14b",
        "dataset": "accounts/trilogy/datasets/sft-v3",
        "epochs": 1,
    },
}


def browser_available() -> bool:
    return CHROMIUM.exists() and importlib.util.find_spec("playwright") is not None


class Users(msgspec.Struct):
    admin: str
    alice: str
    bob: str


async def make_user(pool: asyncpg.Pool, email: str, role: Any = "member") -> str:
    await directory.add_user(pool, email, role, META)
    return (await directory.issue_key(pool, email, "test", META)).key


@pytest.fixture
async def users(pool: asyncpg.Pool) -> Users:
    return Users(
        admin=await make_user(pool, "root@example.com", "admin"),
        alice=await make_user(pool, "alice@example.com"),
        bob=await make_user(pool, "bob@example.com"),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    """The base URL of a running ftq (scheduler on, simulated Fireworks with 8 GPUs)."""
    settings = Settings(
        database_url=db_url,
        fireworks_base_url="simulator",
        fireworks_gpu_quota=8,
        data_dir=tmp_path,
        log_level="warning",
        reconcile_seconds=1.0,
    )
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="ftq-ui-test-server", daemon=True)
    thread.start()
    for _ in range(300):
        if srv.started:
            break
        threading.Event().wait(0.05)
    assert srv.started, "ftq did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not browser_available():
        pytest.skip(ENABLE)
    from playwright.async_api import async_playwright  # noqa: PLC0415

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        await chromium.close()


class Pages:
    """New browser contexts (one per signed-in person) whose every request is recorded."""

    def __init__(self, browser: Any, base: str, name: str) -> None:
        self.browser, self.base, self.name = browser, base, name
        self.requests: list[str] = []
        self.contexts: list[Any] = []

    async def new(self, width: int = 1280) -> Any:
        context = await self.browser.new_context(viewport={"width": width, "height": 900})
        context.on("request", lambda r: self.requests.append(r.url))
        self.contexts.append(context)
        return await context.new_page()

    async def signed_in(self, key: str, width: int = 1280) -> Any:
        page = await self.new(width)
        await page.goto(f"{self.base}/ui/login")
        await page.fill("input[name=key]", key)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{self.base}/ui/queue")
        return page

    async def shot(self, page: Any, label: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"), full_page=True)

    def foreign(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(self.base + "/")]


@pytest.fixture
async def pages(browser: Any, server: str, request: pytest.FixtureRequest) -> AsyncIterator[Pages]:
    recorder = Pages(browser, server, request.node.name)
    yield recorder
    for context in recorder.contexts:
        await context.close()
    assert recorder.requests, "the browser made no request at all"
    assert recorder.foreign() == [], "a page asked for something outside ftq"


async def until(check: Any, timeout: float = 2.0) -> None:
    """Wait until `check()` is true, at most `timeout` seconds (then fail)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        assert loop.time() < end, "not within the time allowed"
        await asyncio.sleep(0.05)
