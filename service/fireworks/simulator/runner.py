"""Serving the simulator: `run_simulator` (async, stoppable) and `main_simulator` (blocking)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .app import create_simulator_app
from .sim import SimConfig, Simulator


@dataclass
class RunningSimulator:
    """A served simulator; `base_url` is what FireworksClient takes; call `stop()` when done."""

    sim: Simulator
    runner: web.AppRunner
    base_url: str

    async def stop(self) -> None:
        await self.runner.cleanup()


async def run_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    quota: int = 8,
    job_seconds: float = 60.0,
    account_id: str = "ftq-sim",
    api_key: str = "sim-key",
    sim: Simulator | None = None,
) -> RunningSimulator:
    """Start serving on `host:port` (0 picks a free port) inside the running event loop."""
    sim = sim or Simulator(
        SimConfig(account_id=account_id, api_key=api_key, quota=quota, job_seconds=job_seconds)
    )
    # A stop does not wait out requests held by injected latency (a "hanging" endpoint).
    runner = web.AppRunner(create_simulator_app(sim), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningSimulator(sim, runner, f"http://{bound_host}:{bound_port}")


def main_simulator(
    host: str,
    port: int,
    quota: int,
    job_seconds: float,
    *,
    account_id: str = "ftq-sim",
    api_key: str = "sim-key",
    default_gpus: int = 4,
    serve_sft_dpo_cancel: bool = True,
    seed: int = 0,
) -> None:
    """Blocking entry point for `ftq fireworks-sim`; runs until interrupted."""
    config = SimConfig(
        account_id=account_id,
        api_key=api_key,
        quota=quota,
        job_seconds=job_seconds,
        default_gpus=default_gpus,
        serve_sft_dpo_cancel=serve_sft_dpo_cancel,
        seed=seed,
    )
    web.run_app(create_simulator_app(Simulator(config)), host=host, port=port)
