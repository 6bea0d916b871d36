"""`ftq serve --workers 2`: two server processes on one port share the database, one leads
the admission loop, every job ends, the log audits clean, and SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import signal

from tests.e2e.conftest import (
    SFT_JOB,
    Env,
    free_port,
    healthy,
    http,
    issue,
    wait_for,
    with_simulator,
)


async def test_two_workers_serve_one_port_and_admit_every_job(env: Env, db_url: str) -> None:
    port = free_port()
    sim, served, _ = await with_simulator(env, db_url, job_seconds=1, FTQ_USER_CAP="2")
    keys = [await issue(served, f"u{i}@e2e.test", "member") for i in range(3)]
    server = await served.start("serve", "--port", str(port), "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    await wait_for(lambda: healthy(url), "ftq serve --workers 2", server)
    assert sim.proc.returncode is None, sim.err

    answers = await asyncio.gather(
        *(http("POST", f"{url}/jobs", key, SFT_JOB) for key in keys for _ in range(4))
    )
    assert [status for status, _ in answers] == [201] * 12, answers
    ids = {body["id"] for _, body in answers}

    async def ended() -> bool:
        states = set()
        for key in keys:
            status, jobs = await http("GET", f"{url}/jobs?limit=100", key)
            assert status == 200
            states |= {job["state"] for job in jobs if job["id"] in ids}
        return states == {"SUCCESS"}

    await wait_for(ended, "every job to succeed", server, timeout=90)
    audited = await served.run("audit")
    assert audited.code == 0, audited.out + audited.err
    workers = await asyncio.create_subprocess_exec(
        "pgrep", "-P", str(server.proc.pid), stdout=asyncio.subprocess.PIPE
    )
    children = (await workers.communicate())[0].split()
    assert len(children) >= 2, children  # uvicorn's worker processes
    assert await server.stop(signal.SIGTERM) == 0, server.err


async def test_more_workers_refuse_the_built_in_simulator(env: Env, db_url: str) -> None:
    refused = await env.with_(DATABASE_URL=db_url, FIREWORKS_BASE_URL="simulator").run(
        "serve", "--port", str(free_port()), "--workers", "2"
    )
    assert refused.code == 2
    assert "FTQ_WORKERS > 1" in refused.err and "ftq fireworks-sim" in refused.err
