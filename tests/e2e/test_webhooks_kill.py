"""A webhook delivery cut off by `kill -9` of the server is sent again by the next server,
with the same delivery id and body, and later events follow in log order."""

from __future__ import annotations

import asyncio
import base64
import signal
from collections.abc import AsyncIterator

import msgspec
import pytest
from aiohttp import web

from tests.e2e.conftest import (
    SFT_JOB,
    Env,
    Stack,
    free_port,
    healthy,
    http,
    issue,
    wait_for,
    with_simulator,
)

SECRET_KEY = base64.b64encode(bytes(range(32))).decode()


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.hang = True  # the first delivery never gets an answer: its server is killed

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.headers["X-FTQ-Delivery"], await request.read()))
        while self.hang:
            await asyncio.sleep(0.05)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    got = Receiver()
    app = web.Application()
    app.router.add_post("/hook", got.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield got, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    got.hang = False
    await runner.cleanup()


async def test_kill_9_mid_delivery_loses_nothing(
    env: Env, db_url: str, receiver: tuple[Receiver, str]
) -> None:
    got, hook = receiver
    sim, served, sim_url = await with_simulator(
        env, db_url, FTQ_SECRET_KEY=SECRET_KEY, FTQ_WEBHOOK_ALLOW_PRIVATE="true"
    )
    await issue(served, "root@e2e.test", "admin")
    alice = await issue(served, "alice@e2e.test", "member")
    port = free_port()
    server = await served.start("serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    await wait_for(lambda: healthy(url), "ftq serve", server)
    stack = Stack(served.with_(FTQ_URL=url), url, "", alice, server, sim_url)

    status, created = await http(
        "POST", f"{url}/webhooks", alice, {"url": hook, "types": ["job.submitted"]}
    )
    assert status == 201, created
    status, first = await http("POST", f"{url}/jobs", alice, SFT_JOB)
    assert status == 201, first

    async def delivering() -> bool:
        return len(got.requests) >= 1

    await wait_for(delivering, "the first delivery to reach the receiver", server)
    await stack.restart(signal.SIGKILL)  # mid-delivery: no answer ever reached the server
    got.hang = False
    status, second = await http("POST", f"{url}/jobs", alice, SFT_JOB)
    assert status == 201, second

    async def both_delivered() -> bool:
        return {msgspec.json.decode(b)["job_id"] for _, b in got.requests} >= {
            first["id"],
            second["id"],
        }

    await wait_for(both_delivered, "both deliveries after the restart", stack.server)
    ids = [delivery for delivery, _ in got.requests]
    jobs = [msgspec.json.decode(body)["job_id"] for _, body in got.requests]
    assert jobs[:2] == [first["id"], first["id"]]  # the cut-off delivery, sent again
    assert ids[0] == ids[1] and got.requests[0][1] == got.requests[1][1]
    assert jobs[-1] == second["id"] and jobs.count(second["id"]) == 1  # then in log order
    assert sim.proc.returncode is None
