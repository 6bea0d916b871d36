"""Helpers of the reliability suite: a cluster of real `ftq serve` replicas on one database in
front of one `ftq fireworks-sim` process, a load driver, a chaos driver, and the checks of the
six invariants from the outside (HTTP, the simulator's books, `ftq audit`, `ftq replay`).

The CI tests (tests/e2e/test_replicas.py) and the soak variants (`make soak`) share it; the
soak variants append their measured rows to tests/RELIABILITY.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from service import directory
from tests.e2e.conftest import SFT_JOB, Env, Proc, free_port, healthy, wait_for

META = {"actor": "reliability-test"}
TERMINAL = frozenset({"SUCCESS", "FAIL", "CANCELLED"})
SIM_TERMINAL = frozenset(
    {
        "JOB_STATE_COMPLETED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_EARLY_STOPPED",
        "DELETED",
    }
)
RELIABILITY_MD = Path(__file__).resolve().parents[1] / "RELIABILITY.md"


@dataclass
class Cluster:
    env: Env
    db_url: str
    sim: Proc
    sim_url: str
    quota: int
    cap: int
    ports: list[int]
    replicas: list[Proc | None]
    admin: str = ""
    users: dict[str, str] = field(default_factory=dict)  # email -> key
    session: aiohttp.ClientSession | None = None

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.session is not None
        return self.session

    async def call(
        self,
        method: str,
        url: str,
        key: str | None = None,
        body: Any = None,
        timeout: float = 10,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        headers = dict(headers or {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        async with self.http.request(
            method, url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            raw = await resp.read()
            try:
                return resp.status, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, raw.decode(errors="replace")

    async def sim_call(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, f"{self.sim_url}{path}", body=body)
        assert status < 500, (path, status, data)
        return data

    async def start_replica(self, i: int, **extra: str) -> Proc:
        env = self.env.with_(**extra) if extra else self.env
        proc = await env.start("serve", "--port", str(self.ports[i]))
        self.replicas[i] = proc
        return proc

    async def wait_healthy(self, i: int) -> None:
        proc = self.replicas[i]
        await wait_for(lambda: healthy(self.url(i)), f"replica {i}", proc, timeout=60)

    def alive(self) -> list[int]:
        return [
            i for i, p in enumerate(self.replicas) if p is not None and p.proc.returncode is None
        ]

    async def is_leader(self, i: int) -> bool:
        try:
            status, body = await self.call(
                "GET", f"{self.url(i)}/admin/scheduler", self.admin, timeout=3
            )
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return status == 200 and isinstance(body, dict) and bool(body.get("leader"))

    async def leaders(self) -> list[int]:
        alive = self.alive()
        flags = await asyncio.gather(*(self.is_leader(i) for i in alive))
        return [i for i, flag in zip(alive, flags, strict=True) if flag]

    async def wait_leader(self, timeout: float = 30, exclude: int | None = None) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [i for i in await self.leaders() if i != exclude]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no leader within {timeout}s")

    async def kill(self, i: int) -> None:
        proc = self.replicas[i]
        assert proc is not None
        if proc.proc.returncode is None:
            proc.proc.send_signal(signal.SIGKILL)
            await proc.proc.wait()

    async def run_cli(self, *args: str) -> tuple[int, str, str]:
        result = await self.env.run(*args, timeout=120)
        return result.code, result.out, result.err


async def make_cluster(
    env: Env,
    db_url: str,
    *,
    replicas: int,
    quota: int = 16,
    cap: int = 2,
    job_seconds: float = 2.0,
    users: int = 4,
    first_replica_env: dict[str, str] | None = None,
    start: bool = True,
) -> Cluster:
    sim_port = free_port()
    sim = await env.start(
        "fireworks-sim",
        "--port",
        str(sim_port),
        "--quota",
        str(quota),
        "--job-seconds",
        str(job_seconds),
    )
    sim_url = f"http://127.0.0.1:{sim_port}"
    served = env.with_(
        DATABASE_URL=db_url,
        FIREWORKS_BASE_URL=sim_url,
        FIREWORKS_API_KEY="sim-key",
        FIREWORKS_ACCOUNT_ID="ftq-sim",
        FTQ_RECONCILE_SECONDS="1",
        FIREWORKS_GPU_QUOTA=str(quota),
        FTQ_USER_CAP=str(cap),
    )
    cluster = Cluster(
        served,
        db_url,
        sim,
        sim_url,
        quota,
        cap,
        [free_port() for _ in range(replicas)],
        [None] * replicas,
    )
    cluster.session = aiohttp.ClientSession()
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    try:
        await directory.add_user(pool, "root@rel.test", "admin", META)
        cluster.admin = (await directory.issue_key(pool, "root@rel.test", "t", META)).key
        for n in range(users):
            email = f"user{n}@rel.test"
            await directory.add_user(pool, email, "member", META)
            cluster.users[email] = (await directory.issue_key(pool, email, "t", META)).key
    finally:
        await pool.close()
    await wait_for(lambda: _sim_up(sim_url), "fireworks-sim", sim)
    if start:
        if first_replica_env is not None:  # the first one alone, so it becomes the leader
            await cluster.start_replica(0, **first_replica_env)
            await cluster.wait_healthy(0)
            assert await cluster.wait_leader() == 0
        rest = range(1 if first_replica_env is not None else 0, replicas)
        for i in rest:
            await cluster.start_replica(i)
        for i in rest:
            await cluster.wait_healthy(i)
    return cluster


async def _sim_up(sim_url: str) -> bool:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{sim_url}/_sim/state", timeout=aiohttp.ClientTimeout(total=2)) as r,
    ):
        return r.status == 200


@dataclass
class Ledger:
    """What the test drivers did and saw."""

    acked: dict[str, str] = field(default_factory=dict)  # job id -> user email (answered 201)
    submit_statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    cancel_statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    set_failed: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    kills: int = 0
    failovers: list[float] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    idempotent: bool = False  # every submit carried an Idempotency-Key

    @property
    def operations(self) -> int:
        return sum(self.submit_statuses.values()) + sum(self.cancel_statuses.values())


async def submit_and_cancel(
    cluster: Cluster,
    ledger: Ledger,
    *,
    submits: int,
    cancel_rate: float,
    rng: random.Random,
    spread_s: float,
) -> None:
    """`submits` submissions by random users through random live replicas, some cancelled."""
    emails = sorted(cluster.users)
    ledger.idempotent = True

    async def one(n: int) -> None:
        await asyncio.sleep(rng.random() * spread_s)
        email = rng.choice(emails)
        key = cluster.users[email]
        body = {**SFT_JOB, "gpu_count": rng.choice((2, 4, 4, 8)), "display_name": f"rel-{n}"}
        job_id = None
        idem = f"rel-{n}"  # a retry after a lost answer must not submit the job twice
        for _attempt in range(20):  # a replica may be down: retry on another
            alive = cluster.alive()
            if not alive:
                await asyncio.sleep(0.2)
                continue
            i = rng.choice(alive)
            try:
                status, data = await cluster.call(
                    "POST", f"{cluster.url(i)}/jobs", key, body, headers={"Idempotency-Key": idem}
                )
            except (aiohttp.ClientError, OSError, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            ledger.submit_statuses[status] += 1
            if status >= 500:
                ledger.server_errors.append(f"POST /jobs -> {status} {data}")
                await asyncio.sleep(0.2)
                continue
            assert status == 201 or (status == 200 and _attempt > 0), (status, data)
            job_id = data["id"]
            ledger.acked[job_id] = email
            break
        if job_id is None or rng.random() >= cancel_rate:
            return
        await asyncio.sleep(rng.random() * 3)
        for _attempt in range(20):
            alive = cluster.alive()
            if not alive:
                await asyncio.sleep(0.2)
                continue
            i = rng.choice(alive)
            try:
                status, data = await cluster.call("DELETE", f"{cluster.url(i)}/jobs/{job_id}", key)
            except (aiohttp.ClientError, OSError, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            ledger.cancel_statuses[status] += 1
            if status >= 500:
                ledger.server_errors.append(f"DELETE /jobs -> {status} {data}")
                await asyncio.sleep(0.2)
                continue
            assert status in (200, 202, 409), (status, data)
            return

    await asyncio.gather(*(one(n) for n in range(submits)))


async def fireworks_chaos(
    cluster: Cluster,
    ledger: Ledger,
    stop: asyncio.Event,
    *,
    rng: random.Random,
    fail: int,
    pause: int,
    unknown: int,
    delete: int,
) -> None:
    """Fireworks failing, pausing, drifting and deleting jobs while ftq runs them; paused and
    unknown-state jobs are let go (COMPLETED) a couple of seconds later."""
    release: list[tuple[float, str]] = []
    turn = 0
    while not stop.is_set():
        state = await cluster.sim_call("GET", "/_sim/state")
        live = [
            j["id"]
            for j in state["jobs"]
            if j["id"] in ledger.acked
            and j["state"] in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_VALIDATING")
            and j["id"] not in ledger.paused | ledger.unknown | ledger.set_failed | ledger.deleted
        ]
        if live:
            job = rng.choice(live)
            # each kind of trouble in turn, so that every run sees all of them
            wanted = [
                kind
                for kind, have, cap in (
                    ("fail", ledger.set_failed, fail),
                    ("delete", ledger.deleted, delete),
                    ("pause", ledger.paused, pause),
                    ("unknown", ledger.unknown, unknown),
                )
                if len(have) < cap
            ]
            kind = wanted[turn % len(wanted)] if wanted and rng.random() < 0.6 else None
            turn += 1
            if kind == "fail":
                await cluster.sim_call(
                    "POST", f"/_sim/jobs/{job}/outcome", {"state": "FAILED", "message": "oom"}
                )
                ledger.set_failed.add(job)
            elif kind == "delete":
                await cluster.sim_call("DELETE", f"/_sim/jobs/{job}")
                ledger.deleted.add(job)
            elif kind == "pause":
                await cluster.sim_call("POST", f"/_sim/jobs/{job}/outcome", {"state": "PAUSED"})
                ledger.paused.add(job)
                release.append((time.monotonic() + 2, job))
            elif kind == "unknown":
                await cluster.sim_call(
                    "POST", f"/_sim/jobs/{job}/outcome", {"state": "JOB_STATE_FROM_THE_FUTURE"}
                )
                ledger.unknown.add(job)
                release.append((time.monotonic() + 2, job))
        now = time.monotonic()
        for at, job in [r for r in release if r[0] <= now]:
            release.remove((at, job))
            with contextlib.suppress(AssertionError):  # deleted meanwhile: nothing to let go
                await cluster.sim_call("POST", f"/_sim/jobs/{job}/outcome", {"state": "COMPLETED"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.4):
                await stop.wait()
    for _, job in release:
        with contextlib.suppress(AssertionError):
            await cluster.sim_call("POST", f"/_sim/jobs/{job}/outcome", {"state": "COMPLETED"})


async def sample_simulator(cluster: Cluster, ledger: Ledger, stop: asyncio.Event) -> None:
    """Snapshots of what Fireworks holds, for the per-user check from its side."""
    while not stop.is_set():
        with contextlib.suppress(AssertionError, aiohttp.ClientError, OSError, TimeoutError):
            state = await cluster.sim_call("GET", "/_sim/state")
            ledger.samples.append(
                {
                    "usage": state["usage"],
                    "live": [
                        (j["id"], j["state"])
                        for j in state["jobs"]
                        if j["holds_gpus"] and not j["external"]
                    ],
                }
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await stop.wait()


async def kill_leaders(
    cluster: Cluster, ledger: Ledger, stop: asyncio.Event, *, every_s: float, kills: int
) -> None:
    """SIGKILL the leader every `every_s`, measure how long until another replica leads,
    restart the killed one (same port) as a follower."""
    while ledger.kills < kills and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await stop.wait()
        if stop.is_set():
            return
        leaders = await cluster.leaders()
        assert len(leaders) <= 1, f"two leaders at once: {leaders}"
        if not leaders:
            continue
        victim = leaders[0]
        await cluster.kill(victim)
        t0 = time.monotonic()
        ledger.kills += 1
        new = await cluster.wait_leader(timeout=30, exclude=victim)
        ledger.failovers.append(time.monotonic() - t0)
        assert new != victim
        await cluster.start_replica(victim)
        await cluster.wait_healthy(victim)


async def wait_all_terminal(cluster: Cluster, ledger: Ledger, timeout: float) -> dict[str, Any]:
    """Every job in ftq (the acknowledged ones and any whose answer was lost with a killed
    replica), read back through a live replica, once all are terminal."""
    deadline = time.monotonic() + timeout
    jobs: dict[str, Any] = {}
    while True:
        i = cluster.alive()[0]
        status, listed = await cluster.call(
            "GET", f"{cluster.url(i)}/jobs?limit=1000", cluster.admin, timeout=30
        )
        assert status == 200, (status, listed)
        listed_ids = {j["id"] for j in listed}
        lost = set(ledger.acked) - listed_ids
        assert not lost, f"acknowledged jobs missing from the list: {lost}"
        for job in listed:
            jobs[job["id"]] = job
        for job_id in ledger.acked:  # each one read by id too
            if jobs[job_id]["state"] in TERMINAL:
                continue
            status, body = await cluster.call(
                "GET", f"{cluster.url(i)}/jobs/{job_id}", cluster.admin
            )
            assert status == 200, f"acknowledged job {job_id} not found: {status} {body}"
            jobs[job_id] = body
        pending = {j: b["state"] for j, b in jobs.items() if b["state"] not in TERMINAL}
        if not pending:
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} jobs never reached a terminal state: {pending}")
        await asyncio.sleep(0.5)


async def check_invariants(cluster: Cluster, ledger: Ledger, jobs: dict[str, Any]) -> None:
    """The six invariants, checked from the outside after the run."""
    sim = await cluster.sim_call("GET", "/_sim/state")
    created: dict[str, int] = sim["jobs_created"]
    # 4 exactly once: at most one Fireworks job per ftq job, and one for every admitted job.
    assert all(n <= 1 for n in created.values()), {k: n for k, n in created.items() if n > 1}
    i = cluster.alive()[0]
    admitted = set()
    for job_id in jobs:
        status, events = await cluster.call(
            "GET", f"{cluster.url(i)}/jobs/{job_id}/events", cluster.admin
        )
        assert status == 200, (status, events)
        types = [e["type"] for e in events]
        # 6 state machine: nothing after a terminal event.
        terminal_at = [
            n
            for n, t in enumerate(types)
            if t in ("job.succeeded", "job.failed", "job.cancelled", "job.rejected")
        ]
        assert len(terminal_at) == 1, (job_id, types)
        assert terminal_at[0] == len(types) - 1, (job_id, types)
        if "job.admitted" in types:
            admitted.add(job_id)
            assert created.get(job_id) == 1, (job_id, created.get(job_id), types)
    # no Fireworks job for an ftq job never admitted, beyond the ones still resolving
    orphans = [j["id"] for j in sim["jobs"] if not j["external"] and j["id"] not in jobs]
    assert not orphans, orphans
    # no Fireworks job outlives its ftq job
    outliving = [
        (j["id"], j["state"])
        for j in sim["jobs"]
        if j["id"] in jobs and j["holds_gpus"] and j["state"] != "JOB_STATE_CANCELLING"
    ]
    assert not outliving, outliving
    # 2 GPU budget, from Fireworks' side.
    assert sim["max_usage_seen"] <= cluster.quota, sim["max_usage_seen"]
    assert all(s["usage"] <= cluster.quota for s in ledger.samples)
    # 1 per-user cap, from Fireworks' side: jobs holding GPUs at one instant, per user. A job
    # ftq cancelled may still be CANCELLING on Fireworks (or be a raced create being cleaned
    # up), so only jobs that never ended CANCELLED in ftq are counted: their Fireworks life
    # lies inside their PROGRESS interval.
    counted = {j for j, b in jobs.items() if b["state"] != "CANCELLED"}
    worst = 0
    for sample in ledger.samples:
        per_user: dict[str, int] = defaultdict(int)
        for job_id, _state in sample["live"]:
            if job_id in counted:
                per_user[jobs[job_id]["user"]] += 1
        worst = max([worst, *per_user.values()])
    assert worst <= cluster.cap, worst
    # no false FAIL: only jobs Fireworks failed end FAIL.
    false_fail = {j: b.get("error") for j, b in jobs.items() if b["state"] == "FAIL"}
    false_fail = {j: e for j, e in false_fail.items() if j not in ledger.set_failed}
    assert not false_fail, false_fail
    # 5 nothing lost: every 201 was read back, listed and by id, in wait_all_terminal; and
    # with Idempotency-Key on every submit, retries after a killed replica made no duplicate.
    assert set(ledger.acked) <= set(jobs)
    if ledger.idempotent:
        assert set(jobs) == set(ledger.acked), set(jobs) - set(ledger.acked)
    assert not ledger.server_errors, ledger.server_errors[:5]
    # the whole history, by the replay/audit tool (FIFO, cap, budget, state machine)
    code, out, err = await cluster.run_cli("audit")
    if code != 0:  # keep the history for the post-mortem (the database is dropped)
        kept = cluster.env.home / "audit-failed-events.ndjson"
        await cluster.run_cli("replay", "--export", str(kept))
        out += f"\nthe log is kept in {kept}"
    assert code == 0, f"ftq audit failed:\n{out}\n{err}"
    code, out, err = await cluster.run_cli("replay", "--verify")
    assert code == 0, f"ftq replay --verify failed:\n{out}\n{err}"


def soak_enabled() -> bool:
    return os.environ.get("FTQ_SOAK") == "1"


def record_row(scenario: str, size: str, outcome: str) -> None:
    """Append a measured row to the soak table, the last thing in tests/RELIABILITY.md."""
    text = RELIABILITY_MD.read_text() if RELIABILITY_MD.exists() else ""
    if "## Soak runs" not in text:
        text += "\n## Soak runs (`make soak`)\n\n| scenario | size | outcome | when (UTC) |\n"
        text += "|---|---|---|---|\n"
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    RELIABILITY_MD.write_text(
        text.rstrip("\n") + f"\n| {scenario} | {size} | {outcome} | {stamp} |\n"
    )
