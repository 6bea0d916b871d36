"""`/_sim/...` routes (no auth) so tests in another process can steer and inspect the fake."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.fireworks.kinds import KINDS

from .sim import Simulator
from .state import SimError


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not await request.read():
        return {}
    body = await request.json()
    return body if isinstance(body, dict) else {}


def add_control_routes(app: web.Application, sim: Simulator) -> None:
    """Attach the control surface for `sim` to `app`."""

    async def get_state(_: web.Request) -> web.Response:
        return web.json_response(sim.snapshot())

    async def set_faults(request: web.Request) -> web.Response:
        try:
            sim.faults.update(await _body(request))
        except (ValueError, TypeError) as exc:
            return _problem(400, str(exc))
        return web.json_response(sim.faults.snapshot())

    async def reset_faults(_: web.Request) -> web.Response:
        sim.faults.reset()
        return web.json_response(sim.faults.snapshot())

    async def set_config(request: web.Request) -> web.Response:
        try:
            sim.configure(await _body(request))
        except (ValueError, TypeError) as exc:
            return _problem(400, str(exc))
        return web.json_response(sim.snapshot())

    async def set_outcome(request: web.Request) -> web.Response:
        body = await _body(request)
        state = str(body.get("state", ""))
        if not state:
            return _problem(400, "state is required")
        if not state.startswith("JOB_STATE_"):
            state = f"JOB_STATE_{state}"
        try:
            sim.set_outcome(
                request.match_info["job_id"],
                state,
                str(body.get("message") or ""),
                body.get("code"),
            )
        except SimError as exc:
            return _problem(exc.http_status, exc.message)
        return web.json_response({"id": request.match_info["job_id"], "state": state})

    async def delete_job(request: web.Request) -> web.Response:
        try:
            sim.delete_externally(request.match_info["job_id"])
        except SimError as exc:
            return _problem(exc.http_status, exc.message)
        return web.json_response({})

    async def external_job(request: web.Request) -> web.Response:
        body = await _body(request)
        kind = body.get("kind", "SFT")
        if kind not in KINDS:
            return _problem(400, f"kind must be one of {KINDS}")
        try:
            job_id = sim.start_external_job(
                int(body.get("gpus", sim.config.default_gpus)),
                body.get("job_id"),
                kind,
                force=bool(body.get("force", False)),
            )
        except SimError as exc:
            return _problem(exc.http_status, exc.message)
        return web.json_response({"id": job_id})

    async def advance_clock(request: web.Request) -> web.Response:
        body = await _body(request)
        sim.advance(float(body.get("seconds", 0)))
        return web.json_response(sim.snapshot())

    app.router.add_get("/_sim/state", get_state)
    app.router.add_post("/_sim/faults", set_faults)
    app.router.add_delete("/_sim/faults", reset_faults)
    app.router.add_post("/_sim/config", set_config)
    app.router.add_post("/_sim/jobs/{job_id}/outcome", set_outcome)
    app.router.add_delete("/_sim/jobs/{job_id}", delete_job)
    app.router.add_post("/_sim/external-jobs", external_job)
    app.router.add_post("/_sim/clock/advance", advance_clock)
    _add_park_routes(app, sim)


def _add_park_routes(app: web.Application, sim: Simulator) -> None:
    """`POST /_sim/jobs/{id}/park {"state": "PENDING"}` holds a job in a state (progress
    frozen); `DELETE` of the same path lets it go on from there (the stuck-job tests)."""

    async def park(request: web.Request) -> web.Response:
        body = await _body(request)
        state = str(body.get("state") or "JOB_STATE_PENDING")
        if not state.startswith("JOB_STATE_"):
            state = f"JOB_STATE_{state}"
        try:
            sim.state.park(request.match_info["job_id"], state)
        except SimError as exc:
            return _problem(exc.http_status, exc.message)
        return web.json_response({"id": request.match_info["job_id"], "state": state})

    async def release(request: web.Request) -> web.Response:
        try:
            sim.state.release(request.match_info["job_id"])
        except SimError as exc:
            return _problem(exc.http_status, exc.message)
        return web.json_response({"id": request.match_info["job_id"]})

    app.router.add_post("/_sim/jobs/{job_id}/park", park)
    app.router.add_delete("/_sim/jobs/{job_id}/park", release)
