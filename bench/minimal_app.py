"""The framework's own ceiling for `bench/http_api.py`: a Litestar app whose `POST /jobs`
decodes the same body into a msgspec struct and runs one plain INSERT of it, with no auth,
event log, projection, validation, redaction, logging or metrics.

It is not ftq: it shows what Litestar and uvicorn on one process reach here before ftq does
any of its work, so the ratio of ftq's POST to the plain-INSERT baseline can be read
against the ratio this app gets. `create_raw` is the same without Litestar: a bare ASGI
callable, what uvicorn alone reaches. Served by `uvicorn bench.minimal_app:create --factory`
(or `create_raw`) with FTQ_BENCH_DATABASE_URL set."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, get, post
from litestar.datastructures import State

from bench.event_store import PLAIN_INSERT, PLAIN_TABLE


class Submission(msgspec.Struct, forbid_unknown_fields=True):
    kind: str
    gpu_count: int
    fireworks_payload: dict[str, Any]
    display_name: str | None = None


class Created(msgspec.Struct):
    id: str
    kind: str
    gpu_count: int


@post("/jobs")
async def submit(data: Submission, state: State) -> Created:
    job_id = str(uuid.uuid4())
    await state.pool.execute(PLAIN_INSERT, job_id, msgspec.json.encode(data).decode())
    return Created(id=job_id, kind=data.kind, gpu_count=data.gpu_count)


@get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ok"}


@asynccontextmanager
async def _pool(app: Litestar) -> AsyncIterator[None]:
    async with asyncpg.create_pool(os.environ["FTQ_BENCH_DATABASE_URL"]) as pool:
        await pool.execute(PLAIN_TABLE)
        app.state.pool = pool
        yield


def create() -> Litestar:
    return Litestar([submit, ready], lifespan=[_pool])


Message = dict[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_decode_submission = msgspec.json.Decoder(Submission)
_JSON = [(b"content-type", b"application/json")]


class RawApp:
    """`POST /jobs` (one INSERT) and `GET /readyz` as a bare ASGI app: no routing beyond the
    path, no validation errors, no middleware. Anything else is 404."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        status, body = 404, b"{}"
        if scope["path"] == "/readyz":
            status, body = 200, b'{"status":"ok"}'
        elif scope["path"] == "/jobs" and scope["method"] == "POST" and self.pool is not None:
            data = _decode_submission.decode(await _body(receive))
            job_id = str(uuid.uuid4())
            await self.pool.execute(PLAIN_INSERT, job_id, msgspec.json.encode(data).decode())
            status = 201
            body = msgspec.json.encode(Created(id=job_id, kind=data.kind, gpu_count=data.gpu_count))
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = await asyncpg.create_pool(os.environ["FTQ_BENCH_DATABASE_URL"])
                await self.pool.execute(PLAIN_TABLE)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def create_raw() -> RawApp:
    return RawApp()
