"""Webhook delivery from the log to a real loopback HTTP receiver: signed bodies, log order,
scopes, retries with the same delivery id, giving up and resuming, and hand-over between
deliverers without losing an event."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp import web

from events.domain.job import JOB
from events.domain.job_commands import RequestCancel, SubmitJob
from events.domain.webhooks import Scope, WebhookSubscribed
from service.commands import run_command
from service.webhooks import subscriptions
from service.webhooks.deliverer import WebhookDeliverer
from service.webhooks.subscriptions import Webhook

KEY = bytes(range(32))
SECRET = "whsec_test-secret-0123456789"
META = {"actor": "test"}
ALICE, BOB = str(uuid.uuid4()), str(uuid.uuid4())
WANDB = "wb-s3cr3t"


class Receiver:
    """A loopback HTTP server recording every request; `fail` answers 500 that many times."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail = 0
        self.hang = asyncio.Event()  # set: requests hang until released
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if self.hang.is_set():
            await self.release.wait()
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500)
        return web.Response(status=204)

    def bodies(self) -> list[dict[str, Any]]:
        return [msgspec.json.decode(body) for _, body in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    app = web.Application()
    app.router.add_post("/hook", got.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    got.url = f"http://127.0.0.1:{port}/hook"
    yield got
    got.release.set()
    await runner.cleanup()


Make = Callable[..., WebhookDeliverer]


@pytest.fixture
async def deliverer(pool: asyncpg.Pool, db_url: str) -> AsyncIterator[Make]:
    """Makes deliverers (jitter 0, loopback allowed); every one is stopped at the end."""
    made: list[WebhookDeliverer] = []

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(db_url)

    def make(**over: Any) -> WebhookDeliverer:
        args: dict[str, Any] = {"max_attempts": 12, "allow_private": True, "jitter": lambda: 0.0}
        made.append(WebhookDeliverer(pool, connect, [KEY], None, **(args | over)))
        return made[-1]

    yield make
    for worker in made:
        await worker.stop()


async def subscribe(
    pool: asyncpg.Pool,
    url: str,
    *,
    owner: str = ALICE,
    scope: Scope = "own",
    user_id: str | None = None,
    types: list[str] | None = None,
) -> Webhook:
    event = WebhookSubscribed(
        at=datetime.now(UTC),
        webhook_id=str(uuid.uuid4()),
        owner_id=owner,
        url=url,
        types=types or ["job.submitted", "job.cancelled"],
        scope=scope,
        user_id=user_id,
    )
    return await subscriptions.create(pool, event, SECRET, KEY, META)


async def submit(pool: asyncpg.Pool, user: str, name: str) -> str:
    job_id = str(uuid.uuid4())
    command = SubmitJob(
        at=datetime.now(UTC),
        job_id=job_id,
        user_id=user,
        user_email=f"{user[:8]}@example.com",
        kind="SFT",
        display_name=name,
        gpu_count=1,
        fireworks_payload={
            "baseModel": "m",
            "dataset": "d",
            "wandbConfig": {"apiKey": "wb-s3cr3t"},
        },
    )
    await run_command(pool, JOB, job_id, command, META, new_stream=True)
    return job_id


async def cancel(pool: asyncpg.Pool, job_id: str) -> None:
    await run_command(pool, JOB, job_id, RequestCancel(at=datetime.now(UTC), by="test"), META)


async def make_due(pool: asyncpg.Pool) -> None:
    """Time travel for retries: every waiting subscription is due now."""
    await pool.execute("UPDATE webhooks SET next_attempt_at = now()")


async def rounds_until(worker: WebhookDeliverer, requests: int, receiver: Receiver) -> None:
    """Delivery rounds until the receiver has seen `requests` requests. The log holds back
    events while any older transaction of the server still runs (other databases' too), so
    one round may not see them yet."""
    async with asyncio.timeout(30):
        while len(receiver.requests) < requests:
            await worker.deliver_due()
            await asyncio.sleep(0.02)


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.02)


async def test_deliveries_are_signed_redacted_in_log_order_and_scoped(
    pool: asyncpg.Pool, deliverer: Make, receiver: Receiver
) -> None:
    before = await submit(pool, ALICE, "before")  # before the subscription: not delivered
    hook = await subscribe(pool, receiver.url)
    first = await submit(pool, ALICE, "first")
    await submit(pool, BOB, "bob's")  # another user's job: never delivered to alice
    await cancel(pool, first)
    second = await submit(pool, ALICE, "second")

    await rounds_until(deliverer(), 3, receiver)

    bodies = receiver.bodies()
    assert [(b["type"], b["job_id"]) for b in bodies] == [
        ("job.submitted", first),
        ("job.cancelled", first),
        ("job.submitted", second),
    ]
    assert before not in {b["job_id"] for b in bodies}
    assert [b["position"] for b in bodies] == sorted(b["position"] for b in bodies)
    for headers, raw in receiver.requests:
        expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert headers["X-FTQ-Signature"] == f"sha256={expected}"
        body = msgspec.json.decode(raw)
        assert headers["X-FTQ-Delivery"] == body["id"]
        assert headers["X-FTQ-Event"] == body["type"]
        assert body["user"] == f"{ALICE[:8]}@example.com"
        assert set(body) == {"id", "position", "type", "job_id", "user", "recorded_at", "data"}
    assert WANDB.encode() not in b"".join(raw for _, raw in receiver.requests)
    assert bodies[0]["data"]["fireworks_payload"]["wandbConfig"]["apiKey"] == "***"
    # The reader's position moved past everything it has seen; a second round sends nothing.
    await deliverer().deliver_due()
    assert len(receiver.requests) == 3
    shown = await subscriptions.get(pool, hook.id)
    assert shown is not None and shown.delivered == 3 and shown.attempts == 0


async def test_an_admin_subscription_for_everyone_or_one_user(
    pool: asyncpg.Pool, deliverer: Make, receiver: Receiver
) -> None:
    admin = str(uuid.uuid4())
    everyone = await subscribe(pool, receiver.url, owner=admin, scope="all")
    only_bob = await subscribe(pool, receiver.url, owner=admin, scope="user", user_id=BOB)
    alices = await submit(pool, ALICE, "a")
    bobs = await submit(pool, BOB, "b")
    await rounds_until(deliverer(), 3, receiver)
    ids = {uuid.UUID(b["id"]): b["job_id"] for b in receiver.bodies()}
    assert sorted(ids.values()) == sorted([alices, bobs, bobs])
    rows = {r.id: r.delivered for r in await subscriptions.listed(pool, None)}
    assert rows == {everyone.id: 2, only_bob.id: 1}


async def test_a_failing_receiver_gets_the_same_delivery_again_exactly_once_more(
    pool: asyncpg.Pool, deliverer: Make, receiver: Receiver
) -> None:
    await subscribe(pool, receiver.url)
    job = await submit(pool, ALICE, "retried")
    receiver.fail = 3
    worker = deliverer()
    for attempt in range(1, 4):
        await rounds_until(worker, attempt, receiver)
        await worker.deliver_due()  # not due yet: nothing is sent before the backoff
        assert len(receiver.requests) == attempt
        row = await pool.fetchrow("SELECT attempts, next_attempt_at > now() FROM webhooks")
        assert row is not None and row[0] == attempt and row[1] is True
        await make_due(pool)
    await rounds_until(worker, 4, receiver)
    await worker.deliver_due()
    ids = [headers["X-FTQ-Delivery"] for headers, _ in receiver.requests]
    assert len(ids) == 4 and len(set(ids)) == 1  # one delivery, sent four times, 2xx once
    assert [b["job_id"] for b in receiver.bodies()] == [job] * 4


async def test_after_max_attempts_it_is_failing_until_enabled_then_resumes_there(
    pool: asyncpg.Pool, deliverer: Make, receiver: Receiver
) -> None:
    hook = await subscribe(pool, receiver.url)
    first = await submit(pool, ALICE, "first")
    receiver.fail = 2
    worker = deliverer(max_attempts=2)
    for attempt in range(1, 3):
        await rounds_until(worker, attempt, receiver)
        await make_due(pool)
    shown = await subscriptions.get(pool, hook.id)
    assert shown is not None and shown.state == "failing" and shown.last_error == "HTTP 500"
    failing = await pool.fetchval("SELECT count(*) FROM events WHERE type = 'webhook.failing'")
    assert failing == 1
    second = await submit(pool, ALICE, "while failing")
    for _ in range(5):
        await worker.deliver_due()
    assert len(receiver.requests) == 2  # failing: nothing more is sent

    await subscriptions.change_state(pool, shown, "active", "root", datetime.now(UTC), META)
    await rounds_until(worker, 4, receiver)
    delivered = [b["job_id"] for b in receiver.bodies()[2:]]
    assert delivered == [first, second]  # resumed at the event it stopped on, none skipped


async def test_a_deliverer_cut_off_mid_delivery_hands_over_without_losing_it(
    pool: asyncpg.Pool, deliverer: Make, receiver: Receiver
) -> None:
    await subscribe(pool, receiver.url)
    job = await submit(pool, ALICE, "handed over")
    receiver.hang.set()
    first, second = deliverer(), deliverer()
    await first.start()
    await until(lambda: len(receiver.requests) == 1)  # the first leads and is mid-delivery
    await second.start()  # waits: one deliverer per database
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 1
    await first.stop()  # dies mid-delivery: no 2xx reached it
    receiver.hang.clear()
    receiver.release.set()
    await until(lambda: len(receiver.requests) == 2)
    await second.stop()
    (h1, b1), (h2, b2) = receiver.requests
    assert h1["X-FTQ-Delivery"] == h2["X-FTQ-Delivery"] and b1 == b2
    assert msgspec.json.decode(b2)["job_id"] == job
    row = await pool.fetchrow("SELECT delivered, attempts FROM webhooks")
    assert row is not None and tuple(row) == (1, 0)


async def test_the_log_records_subscriptions_without_their_secret(pool: asyncpg.Pool) -> None:
    hook = await subscribe(pool, "http://127.0.0.1:9/hook")
    rows = await pool.fetch(
        "SELECT type, data::text FROM events WHERE stream_id = $1", f"webhook:{hook.id}"
    )
    assert [r[0] for r in rows] == ["webhook.subscribed"]
    assert SECRET not in rows[0][1]
    sealed = await pool.fetchval("SELECT sealed_secret FROM webhooks")
    assert SECRET.encode() not in sealed
