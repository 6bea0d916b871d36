"""The framework's own ceiling for `bench/http_api.py`: a Litestar app whose `POST /jobs`
decodes the same body into a msgspec struct and runs one plain INSERT of it, with no auth,
event log, projection, validation, redaction, logging or metrics.

It is not ftq: it shows what Litestar and uvicorn on one process reach here before ftq does
any of its work, so the ratio of ftq's POST to the plain-INSERT baseline can be read
against the ratio this app gets. Served by `uvicorn bench.minimal_app:create --factory`
with FTQ_BENCH_DATABASE_URL set."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
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
