"""`ftq serve` (the HTTP API and the admission loop) and `ftq fireworks-sim`."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
import uvicorn

from service.cli.app import app, fail
from service.cli.app import settings_or_exit as settings
from service.database import resolve_database_url, stop_embedded
from service.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from litestar import Litestar

# Live history streams end only when their job does: on shutdown, give them this long.
GRACE_SECONDS = 5


NO_SCHEDULER_ENV = "FTQ_SERVE_NO_SCHEDULER"  # `--no-scheduler`, handed to worker processes


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [default: FTQ_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default: FTQ_PORT].")] = None,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Serve HTTP only; never admit jobs.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Server processes on one port [default: FTQ_WORKERS]."),
    ] = None,
) -> None:
    """Run the HTTP API (and, unless --no-scheduler, the admission loop)."""
    from service.app import create_app  # noqa: PLC0415 - heavy; only this command needs it

    config = settings()
    config = msgspec.structs.replace(
        config,
        host=host or config.host,
        port=config.port if port is None else port,
        workers=workers or config.workers,
    )
    if config.workers > 1:
        serve_workers(config, no_scheduler)
        return
    try:
        asgi = create_app(config, run_scheduler=not no_scheduler)
    except SettingsError as exc:
        fail(str(exc), 2)
    server = uvicorn.Server(uvicorn.Config(asgi, **_uvicorn_options(config)))
    exit_quietly_on_signals(server, server.run)


def _uvicorn_options(config: Settings) -> dict[str, Any]:
    """What every `ftq serve` passes uvicorn, with one worker or several."""
    return {
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": GRACE_SECONDS,
    }


def serve_workers(config: Settings, no_scheduler: bool) -> None:
    """`config.workers` uvicorn worker processes on one port, each a replica built by
    `worker_app` from the environment, which this process fills in: the database (started
    here when embedded, so the workers share it), the address and `--no-scheduler`."""
    if config.uses_simulator:
        fail(
            "FTQ_WORKERS > 1 needs a Fireworks other than the built-in simulator (each "
            "worker would start its own): run `ftq fireworks-sim` and point "
            "FIREWORKS_BASE_URL at it",
            2,
        )
    try:
        config.check_production()
    except SettingsError as exc:
        fail(str(exc), 2)
    url = resolve_database_url(config.database_url, config.data_dir / "pg")
    os.environ |= {
        "DATABASE_URL": url,
        "FTQ_HOST": config.host,
        "FTQ_PORT": str(config.port),
        NO_SCHEDULER_ENV: "1" if no_scheduler else "",
    }
    try:
        uvicorn.run(
            "service.cli.serve:worker_app",
            factory=True,
            workers=config.workers,
            **_uvicorn_options(config),
        )
    finally:
        stop_embedded()


def worker_app() -> Litestar:
    """The app of one `serve_workers` process (a uvicorn factory)."""
    from service.app import create_app  # noqa: PLC0415

    return create_app(load_settings(), run_scheduler=os.environ.get(NO_SCHEDULER_ENV) != "1")


def exit_quietly_on_signals(server: uvicorn.Server, serve_: Callable[[], object]) -> None:
    """Run `serve_`; SIGINT/SIGTERM shut `server` down gracefully and end with exit 0
    (uvicorn re-raises the signal after its shutdown, which would otherwise kill us)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve_()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_embedded()


@app.command("fireworks-sim")
def fireworks_sim(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8600,
    quota: Annotated[int, typer.Option(help="Training GPUs the fake account has.")] = 8,
    job_seconds: Annotated[float, typer.Option(help="How long each fake job runs.")] = 60.0,
    account_id: Annotated[str, typer.Option(help="The fake account id.")] = "ftq-sim",
) -> None:
    """Run the Fireworks simulator alone (point FIREWORKS_BASE_URL at it; key `sim-key`)."""
    from service.fireworks.simulator import main_simulator  # noqa: PLC0415

    main_simulator(host, port, quota, job_seconds, account_id=account_id)
