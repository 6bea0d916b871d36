"""The e2e tier: the real `ftq` processes (`python -m service.cli ...`) over HTTP and the
database. Every child runs in a scratch directory (no stray `.env`), with HOME pointing there
(embedded PostgreSQL data dirs land in it), bounded by timeouts, and is killed in teardown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

FTQ = [sys.executable, "-m", "service.cli"]
SCRUBBED = ("DATABASE_URL", "TEST_DATABASE_URL", "FIREWORKS_", "FTQ_", "SFTQ_")
SFT_JOB: dict[str, Any] = {
    "kind": "SFT",
    "gpu_count": 4,
    "display_name": "e2e",
    "fireworks_payload": {
        "baseModel": "accounts/fireworks/models/qwen3-14b",
        "dataset": "accounts/e2e/datasets/sft",
    },
}


_handed_out = [0]  # ports taken from FTQ_TEST_PORTS so far


def free_port() -> int:
    """A free local port; from the range `FTQ_TEST_PORTS=low-high` when set (several people
    sharing one machine), taken in turn so no port is handed out twice in a row."""
    span = os.environ.get("FTQ_TEST_PORTS", "")
    if not span:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    low, high = (int(part) for part in span.split("-", 1))
    for _ in range(high - low + 1):
        port = low + (_handed_out[0] % (high - low + 1))
        _handed_out[0] += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in FTQ_TEST_PORTS={span}")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def last_line(self) -> str:
        return self.out.rstrip("\n").rsplit("\n", 1)[-1]


@dataclass
class Proc:
    """A long-running child whose output goes to files (no pipe can fill up and block it)."""

    proc: asyncio.subprocess.Process
    out_path: Path
    err_path: Path

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode


class Env:
    """The environment and scratch directory of the children of one test."""

    def __init__(self, home: Path, **values: str) -> None:
        self.home = home
        base = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
        self.vars = {
            **base,
            "HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            "FTQ_LOG_LEVEL": "warning",
            "FTQ_LOG_FORMAT": "console",
            "COLUMNS": "200",
            **values,
        }
        self.procs: list[Proc] = []

    def with_(self, **values: str) -> Env:
        other = Env(self.home)
        other.vars = {**self.vars, **values}
        other.procs = self.procs
        return other

    async def run(self, *args: str, timeout: float = 60, stdin: bytes | None = None) -> Result:
        proc = await asyncio.create_subprocess_exec(
            *FTQ,
            *args,
            env=self.vars,
            cwd=self.home,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            proc.kill()
            await proc.communicate()
            raise AssertionError(f"ftq {' '.join(args)} did not finish in {timeout}s") from None
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    async def start(self, *args: str) -> Proc:
        name = f"{args[0]}-{len(self.procs)}"
        out_path, err_path = self.home / f"{name}.out", self.home / f"{name}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *FTQ, *args, env=self.vars, cwd=self.home, stdout=out, stderr=err
            )
        started = Proc(proc, out_path, err_path)
        self.procs.append(started)
        return started

    async def stop_all(self) -> None:
        for proc in reversed(self.procs):
            await proc.stop()


async def wait_for(
    check: Callable[[], Awaitable[bool]], what: str, proc: Proc | None = None, timeout: float = 45
) -> None:
    """Poll `check` until true; fail early (with the child's stderr) if `proc` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.proc.returncode is not None:
            raise AssertionError(f"{what}: process exited {proc.proc.returncode}:\n{proc.err}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            if await check():
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{proc.err}" if proc else ""))


async def http(method: str, url: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    timeout = aiohttp.ClientTimeout(total=15)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, json=body, headers=headers) as resp,
    ):
        raw = await resp.read()
        is_json = resp.content_type.endswith("json") and raw
        return resp.status, json.loads(raw) if is_json else raw.decode(errors="replace")


async def healthy(url: str) -> bool:
    status, _ = await http("GET", f"{url}/healthz")
    return status == 200


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    environment = Env(tmp_path)
    try:
        yield environment
    finally:
        await environment.stop_all()


@dataclass
class Stack:
    """`ftq fireworks-sim` + `ftq serve` on one database, an admin and a member with keys."""

    env: Env
    url: str
    admin: str
    alice: str
    server: Proc
    sim_url: str

    async def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop `ftq serve` (by `sig`) and start a new one on the same port and database."""
        code = await self.server.stop(sig)
        assert code == (0 if sig == signal.SIGTERM else -sig), self.server.err
        port = self.url.rsplit(":", 1)[1]
        self.server = await self.env.start("serve", "--port", port)
        await wait_for(lambda: healthy(self.url), "ftq serve (restarted)", self.server)


async def issue(env: Env, email: str, role: str) -> str:
    added = await env.run("users", "add", email, "--role", role)
    assert added.code == 0, added.err
    issued = await env.run("keys", "issue", email)
    assert issued.code == 0, issued.err
    return issued.last_line


async def with_simulator(
    env: Env, db_url: str, job_seconds: float = 2, **values: str
) -> tuple[Proc, Env, str]:
    """`ftq fireworks-sim` started, and `env` pointing ftq at it and at `db_url` (plus
    `values`); also the simulator's URL."""
    sim_port = free_port()
    sim = await env.start(
        "fireworks-sim", "--port", str(sim_port), "--quota", "8", "--job-seconds", str(job_seconds)
    )
    sim_url = f"http://127.0.0.1:{sim_port}"
    served = env.with_(
        DATABASE_URL=db_url,
        FIREWORKS_BASE_URL=sim_url,
        FIREWORKS_API_KEY="sim-key",
        FIREWORKS_ACCOUNT_ID="ftq-sim",
        FTQ_RECONCILE_SECONDS="0.5",
        **values,
    )
    return sim, served, sim_url


@pytest.fixture
async def stack(env: Env, db_url: str) -> Stack:
    port = free_port()
    sim, served, sim_url = await with_simulator(env, db_url)
    admin = await issue(served, "root@e2e.test", "admin")
    alice = await issue(served, "alice@e2e.test", "member")
    server = await served.start("serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    await wait_for(lambda: healthy(url), "ftq serve", server)
    assert sim.proc.returncode is None, sim.err
    return Stack(served.with_(FTQ_URL=url), url, admin, alice, server, sim_url)
