"""Benchmark: `POST /jobs` throughput and latency through a real server, against a plain
INSERT baseline measured in the same run.

A uvicorn subprocess (one worker, admission loop off, Fireworks simulator) serves a fresh
database per concurrency level; `wrk` posts an SFT job with a member's key at 8, 32 and 64
connections. The baseline inserts the same JSON body into a bare table from as many asyncpg
connections. Plain wrk cannot hold a fixed rate (no wrk2 `-R`), so the low-load latency is
the p99 at 8 connections. Targets: throughput >= 40 % of the baseline; p99 < 25 ms at low
load. Run: `python -m bench.http_api [seconds]` (DATABASE_URL, or an embedded server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import asyncpg
from litestar import Litestar

from bench.databases import fresh_database
from bench.event_store import plain_insert_baseline
from service import directory
from service.app import create_app
from service.database import resolve_database_url
from service.settings import Settings

CONNECTIONS = (8, 32, 64)
TARGET_RATIO = 0.40
TARGET_P99_MS = 25.0
META = {"actor": "bench"}
BODY = {
    "kind": "SFT",
    "gpu_count": 4,
    "display_name": "bench",
    "fireworks_payload": {
        "baseModel": "accounts/fireworks/models/qwen3-14b",
        "dataset": "accounts/bench/datasets/d-1",
        "epochs": 1,
        "wandbConfig": {"apiKey": "secret", "project": "bench"},
    },
}
LUA = """wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def app_from_env() -> Litestar:
    """The uvicorn factory of the server subprocess (settings from FTQ_BENCH_* variables)."""
    settings = Settings(
        database_url=os.environ["FTQ_BENCH_DATABASE_URL"],
        fireworks_base_url="simulator",
        fireworks_gpu_quota=8,
        data_dir=Path(os.environ["FTQ_BENCH_DATA_DIR"]),
        log_level="warning",
    )
    return create_app(settings, run_scheduler=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _server(db_url: str) -> AsyncIterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "FTQ_BENCH_DATABASE_URL": db_url,
        "FTQ_BENCH_DATA_DIR": tempfile.mkdtemp(prefix="ftq-bench-"),
    }
    command = [sys.executable, "-m", "uvicorn", "bench.http_api:app_from_env", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log"]
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, cwd=Path(__file__).parent.parent
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(60), aiohttp.ClientSession() as session:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{base}/readyz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        async with asyncio.timeout(20):
            await proc.wait()


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, p50/p99 (ms) and non-2xx count from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    pct = {m[0]: _ms(m[1]) for m in re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE)}
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {
        "rps": rps,
        "p50_ms": pct.get("50", float("nan")),
        "p99_ms": pct.get("99", float("nan")),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


async def _wrk(
    base: str, path: str, connections: int, seconds: int, lua: str = ""
) -> dict[str, float]:
    """`wrk` against `base + path` (a GET, or what the Lua script `lua` says)."""
    threads = min(connections, os.cpu_count() or 4, 8)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    if lua:
        command += ["-s", script.name]
    proc = await asyncio.create_subprocess_exec(
        *command, f"{base}{path}", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    os.unlink(script.name)
    return parse_wrk(out.decode())


async def measure(server_url: str, seconds: int = 5) -> list[dict[str, object]]:
    """POST /jobs at each concurrency on a fresh database and server, with the plain-INSERT
    baseline from as many connections; and, once, the same server's `GET /healthz` (no
    database work: the framework's own cost here) for scale."""
    rows: list[dict[str, object]] = []
    for connections in CONNECTIONS:
        async with fresh_database(server_url) as db_url, _server(db_url) as base:
            async with asyncpg.create_pool(db_url, min_size=1, max_size=2) as pool:
                await directory.add_user(pool, "bench@example.com", "member", META)
                key = (await directory.issue_key(pool, "bench@example.com", None, META)).key
            lua = LUA.format(body=json.dumps(BODY), key=key)
            http = await _wrk(base, "/jobs", connections, seconds, lua)
            health = None
            if connections == CONNECTIONS[0]:
                health = await _wrk(base, "/healthz", connections, seconds)
            baseline = await plain_insert_baseline(db_url, connections, seconds)
        rows.append(
            {
                "name": f"http POST /jobs c={connections}",
                "rps": round(http["rps"], 1),
                "p50_ms": round(http["p50_ms"], 2),
                "p99_ms": round(http["p99_ms"], 2),
                "non_2xx": int(http["non_2xx"]),
                "plain_insert_rps": round(baseline, 1),
                "ratio": round(http["rps"] / baseline, 3) if baseline else None,
                "target_ratio": TARGET_RATIO,
                "target_p99_ms_low_load": TARGET_P99_MS if connections == CONNECTIONS[0] else None,
            }
        )
        if health is not None:
            rows.append(
                {
                    "name": f"http GET /healthz c={connections} (no database work)",
                    "rps": round(health["rps"], 1),
                    "p50_ms": round(health["p50_ms"], 2),
                    "p99_ms": round(health["p99_ms"], 2),
                    "non_2xx": int(health["non_2xx"]),
                    "post_jobs_share": round(http["rps"] / health["rps"], 3),
                }
            )
    return rows


async def run(ctx: object) -> list[dict[str, object]]:
    """Entry point for `bench/__main__.py`; `ctx.database_url`, `ctx.http_seconds`."""
    if shutil.which("wrk") is None:
        print("SKIP bench.http_api: `wrk` not found (apt-get install -y wrk)")
        return [{"name": "http POST /jobs", "skipped": "wrk not installed"}]
    server_url = getattr(ctx, "database_url", None) or os.environ.get("DATABASE_URL")
    if not server_url:
        server_url = await asyncio.to_thread(resolve_database_url, None)
    return await measure(server_url, int(getattr(ctx, "http_seconds", 5)))


if __name__ == "__main__":
    args = sys.argv[1:]
    for row in asyncio.run(run(SimpleNamespace(http_seconds=int(args[0]) if args else 5))):
        print(row)
