"""`ftq demo`: everything in one process, with nothing configured — an embedded PostgreSQL
in a fresh demo data directory, the Fireworks simulator, and the service with its admission
loop — plus three demo users whose keys are printed, ready to paste."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import socket
from pathlib import Path
from types import FrameType
from typing import Annotated, Final

import msgspec
import typer
import uvicorn

from service import directory
from service.cli.app import actor, app, fail, settings_or_exit
from service.cli.serve import GRACE_SECONDS
from service.database import create_pool, migrate, resolve_database_url, stop_embedded
from service.demo_dir import DemoBusy, DemoClaim, DemoRecord, claim
from service.settings import Settings

DEMO_USERS: Final = (
    ("admin@demo.ftq", "admin"),
    ("alice@demo.ftq", "member"),
    ("bob@demo.ftq", "member"),
)
SIM_KEY: Final = "sim-key"
SFT_BODY: Final = (
    '{"kind": "SFT", "display_name": "demo sft", "gpu_count": 4, "fireworks_payload": '
    '{"baseModel": "accounts/fireworks/models/qwen3-14b", '
    '"dataset": "accounts/ftq-demo/datasets/sft-demo"}}'
)


class Demo:
    """The running pieces, so a signal at any moment can stop what exists."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.server is None:
            raise KeyboardInterrupt
        self.server.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.set_inheritable(True)
    return sock


async def _users(url: str) -> list[tuple[str, str, str]]:
    """Migrate the fresh database and add the demo users; (role, email, key) of each."""
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        await migrate(pool)
        out = []
        for email, role in DEMO_USERS:
            await directory.add_user(pool, email, role, actor())  # type: ignore[arg-type]
            issued = await directory.issue_key(pool, email, "demo", actor())
            out.append((role, email, issued.key))
        return out
    finally:
        await pool.close()


def _banner(api: str, sim: str, s: Settings, data: Path, keys: list[tuple[str, str, str]]) -> str:
    alice = keys[1][2]
    auth = shlex.quote(f"Authorization: Bearer {alice}")
    lines = [
        "ftq demo is running (Ctrl-C stops everything)",
        f"  API        {api}",
        f"  API docs   {api}/schema/swagger",
        f"  Fireworks  simulator at {sim} ({s.fireworks_gpu_quota} GPUs)",
        f"  database   embedded PostgreSQL in {data}",
        f"             (e.g. DATABASE_URL={shlex.quote(str(s.database_url))} ftq replay)",
        "demo keys (throwaway; this database is wiped at the next demo):",
        *(f"  {role:<6} {email:<16} {key}" for role, email, key in keys),
        "submit an SFT job as alice:",
        f"  curl -s -X POST {api}/jobs -H {auth} -H 'Content-Type: application/json' "
        f"-d {shlex.quote(SFT_BODY)}",
        "list alice's jobs:",
        f"  curl -s {api}/jobs -H {auth}",
        "or with the ftq client:",
        f"  export FTQ_URL={api} SFTQ_API_KEY={alice}",
        "  ftq jobs; ftq queue; ftq watch <job id>",
    ]
    return "\n".join(lines)


async def _run(demo: Demo, base: Settings, sock: socket.socket, quota: int, job_seconds: float,
               exit_after: float | None, held: DemoClaim) -> None:  # fmt: skip
    from service.app import create_app  # noqa: PLC0415 - heavy; only serving needs it
    from service.fireworks.simulator import run_simulator  # noqa: PLC0415

    data = base.data_dir / "demo"
    shutil.rmtree(data, ignore_errors=True)
    url = await asyncio.to_thread(resolve_database_url, None, data)
    sim = await run_simulator(
        "127.0.0.1", 0, quota=quota, job_seconds=job_seconds, account_id="ftq-demo",
        api_key=SIM_KEY,
    )  # fmt: skip
    try:
        settings = msgspec.structs.replace(
            base, database_url=url, fireworks_base_url=sim.base_url, fireworks_api_key=SIM_KEY,
            fireworks_account_id="ftq-demo", fireworks_gpu_quota=quota, reconcile_seconds=2.0,
        )  # fmt: skip
        keys = await _users(url)
        host, port = sock.getsockname()[:2]
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, run_scheduler=True), log_level="warning",
                access_log=False, lifespan="on", timeout_graceful_shutdown=GRACE_SECONDS,
            )
        )  # fmt: skip
        demo.server = server
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has a flag
            await asyncio.sleep(0.05)
        if server.started:
            api = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
            held.record(DemoRecord(pid=os.getpid(), port=port, api=api, database_url=url))
            print(_banner(api, sim.base_url, settings, data, keys), flush=True)
        if exit_after is not None:
            asyncio.get_running_loop().call_later(exit_after, setattr, server, "should_exit", True)
        await serving
    finally:
        await sim.stop()


@app.command()
def demo(
    port: Annotated[
        int | None,
        typer.Option(help="Port of the demo API (0: any free one) [default: FTQ_PORT, 8000]."),
    ] = None,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    quota: Annotated[int, typer.Option(help="GPUs of the simulated account.")] = 16,
    job_seconds: Annotated[float, typer.Option(help="How long each simulated job runs.")] = 30.0,
    exit_after: Annotated[
        float | None, typer.Option(help="Stop by itself after this many seconds (for tests).")
    ] = None,
) -> None:
    """Run a self-contained demo: embedded PostgreSQL, the Fireworks simulator and ftq."""
    base = settings_or_exit()
    port = base.port if port is None else port
    quiet = base.log_level if os.environ.get("FTQ_LOG_LEVEL") else "warning"
    base = msgspec.structs.replace(base, log_format="console", log_level=quiet)
    try:  # before anything touches the directory: another demo may be using its database
        held = claim(base.data_dir)
    except DemoBusy as exc:
        fail(str(exc))
    try:
        _serve(base, host, port, quota, job_seconds, exit_after, held)
    finally:
        held.release()
    print("ftq demo stopped", flush=True)


def _serve(base: Settings, host: str, port: int, quota: int, job_seconds: float,
           exit_after: float | None, held: DemoClaim) -> None:  # fmt: skip
    sock = _bind(host, port)
    state = Demo()
    previous = {sig: signal.signal(sig, state.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a demo ends
            asyncio.run(_run(state, base, sock, quota, job_seconds, exit_after, held))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        stop_embedded()
