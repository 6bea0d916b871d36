"""The simulator's Fireworks-shaped routes: auth, faults, jobs of all kinds, quotas."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from events.domain.job_events import Kind
from service.fireworks.kinds import ID_PARAM, KIND_BY_COLLECTION, LIST_KEY

from .control import add_control_routes
from .pages import page
from .sim import Simulator
from .state import SimError

SIM_KEY = web.AppKey("simulator", Simulator)
GPU_COUNT_HEADER = "X-Ftq-Gpu-Count"
GPU_TYPE_HEADER = "X-Ftq-Gpu-Type"  # the sim's stand-in for the payload's accelerator type
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(error: SimError, headers: dict[str, str] | None = None) -> web.Response:
    """The gRPC-gateway error body `{code, message, details}`."""
    return web.json_response(error.body(), status=error.http_status, headers=headers)


@web.middleware
async def fireworks_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency, bearer auth and random faults on `/v1/...`; SimError → error body."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    sim = request.app[SIM_KEY]
    faults = sim.faults
    if faults.latency_ms > 0:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.quota_latency_ms > 0 and "/quotas" in request.path:
        await asyncio.sleep(faults.quota_latency_ms / 1000)
    if request.headers.get("Authorization") != f"Bearer {sim.config.api_key}":
        return error_response(
            SimError("UNAUTHENTICATED", "request is missing or has an invalid API key")
        )
    if faults.roll_error():
        status = faults.error_status
        code = 14 if status == 503 else 13
        return web.json_response(
            {"code": code, "message": "injected server error", "details": []}, status=status
        )
    if faults.roll_429():
        headers = {} if faults.retry_after is None else {"Retry-After": f"{faults.retry_after:g}"}
        return error_response(
            SimError("RESOURCE_EXHAUSTED", "too many requests, please slow down"), headers
        )
    try:
        return await handler(request)
    except SimError as error:
        return error_response(error)


def _sim(request: web.Request) -> Simulator:
    sim = request.app[SIM_KEY]
    if request.match_info["account"] != sim.config.account_id:
        raise SimError("PERMISSION_DENIED", "permission denied for this account")
    return sim


def _kind(request: web.Request) -> Kind:
    kind = KIND_BY_COLLECTION.get(request.match_info["collection"])
    if kind is None:
        raise SimError("NOT_FOUND", "Not Found")
    return kind


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not await request.read():
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise SimError("INVALID_ARGUMENT", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SimError("INVALID_ARGUMENT", "request body must be a JSON object")
    return body


async def list_collection(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    if request.match_info["collection"] == "quotas":
        items = [sim.state.quota_view(q) for q in sim.state.quotas]
        return web.json_response(page(items, "quotas", request.query))
    kind = _kind(request)
    t = sim.now()
    items = [job.view(t) for job in sim.state.visible_jobs(kind)]
    return web.json_response(page(items, LIST_KEY[kind], request.query))


async def create_job(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    kind = _kind(request)
    payload = await _json_body(request)
    raw_gpus = request.headers.get(GPU_COUNT_HEADER)
    try:
        gpus = int(raw_gpus) if raw_gpus is not None else None
    except ValueError:
        raise SimError("INVALID_ARGUMENT", f"bad {GPU_COUNT_HEADER} header") from None
    for read_only in ("name", "state", "status", "createTime", "completedTime", "createdBy"):
        payload.pop(read_only, None)
    gpu_type = request.headers.get(GPU_TYPE_HEADER, "h200")
    job = sim.state.create(
        kind, request.query.get(ID_PARAM[kind]), payload, gpus, gpu_type=gpu_type
    )
    if sim.faults.roll_lost_create():
        if sim.faults.lose_mode == "abort" and request.transport is not None:
            request.transport.close()
            raise asyncio.CancelledError
        raise SimError("UNAVAILABLE", "upstream connect error (response lost)")
    return web.json_response(job.view(sim.now()))


async def get_item(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    item_id, _, verb = request.match_info["item"].partition(":")
    if request.match_info["collection"] == "quotas" and not verb:
        return web.json_response(sim.state.quota_view(item_id))
    kind = _kind(request)
    job = sim.state.live_job(item_id)
    if job.kind != kind:
        raise SimError("NOT_FOUND", f"job {item_id} not found")
    if verb == "getMetricsFileEndpoint" and kind == "DPO":
        return web.json_response({"signedUrl": f"https://sim.invalid/metrics/{item_id}.jsonl"})
    if verb:
        raise SimError("NOT_FOUND", "Not Found")
    return web.json_response(job.view(sim.now()))


async def delete_item(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    kind = _kind(request)
    job_id = request.match_info["item"]
    if sim.state.live_job(job_id).kind != kind:
        raise SimError("NOT_FOUND", f"job {job_id} not found")
    sim.state.delete(job_id)
    return web.json_response({})


async def post_verb(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    kind = _kind(request)
    job_id, _, verb = request.match_info["item"].partition(":")
    await _json_body(request)
    if sim.state.live_job(job_id).kind != kind:
        raise SimError("NOT_FOUND", f"job {job_id} not found")
    if verb == "cancel" and (kind == "RFT" or sim.config.serve_sft_dpo_cancel):
        sim.state.cancel(job_id)
        return web.json_response({})
    if verb == "resume":
        return web.json_response(sim.state.resume(job_id).view(sim.now()))
    raise SimError("NOT_FOUND", "Not Found")


async def patch_item(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    if request.match_info["collection"] != "quotas":
        raise SimError("NOT_FOUND", "Not Found")
    quota_id = request.match_info["item"]
    allow_missing = request.query.get("allowMissing", "").lower() == "true"
    sim.state.patch_quota(quota_id, await _json_body(request), allow_missing)
    return web.json_response(sim.state.quota_view(quota_id))


def create_simulator_app(sim: Simulator) -> web.Application:
    """The aiohttp app serving Fireworks' routes for `sim` plus its `/_sim/...` controls."""
    app = web.Application(middlewares=[fireworks_gate])
    app[SIM_KEY] = sim
    collection = "/v1/accounts/{account}/{collection}"
    item = collection + "/{item}"
    app.router.add_get(collection, list_collection)
    app.router.add_post(collection, create_job)
    app.router.add_get(item, get_item)
    app.router.add_delete(item, delete_item)
    app.router.add_post(item, post_verb)
    app.router.add_patch(item, patch_item)
    add_control_routes(app, sim)
    return app
