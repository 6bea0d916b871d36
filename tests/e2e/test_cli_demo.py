"""`ftq demo` with nothing configured: starts, prints keys, runs a job to the end, and stops
cleanly on SIGINT with exit 0."""

from __future__ import annotations

import re
import signal

from tests.e2e.conftest import SFT_JOB, Env, free_port, http, wait_for


async def test_demo_serves_a_job_to_completion_and_stops_on_ctrl_c(env: Env) -> None:
    demo = await env.start("demo", "--port", "0", "--job-seconds", "2", "--exit-after", "100")

    async def banner() -> bool:
        return "ftq demo is running" in demo.out and "curl -s" in demo.out

    await wait_for(banner, "the demo banner", demo, timeout=60)
    out = demo.out
    url = re.search(r"API\s+(http://\S+)", out)
    keys = dict(re.findall(r"(\w+@demo\.ftq)\s+(sftq_\S+)", out))
    assert url is not None and set(keys) == {"admin@demo.ftq", "alice@demo.ftq", "bob@demo.ftq"}
    api = url[1]
    assert f"{api}/schema/swagger" in out
    assert (await http("GET", f"{api}/schema/swagger"))[0] == 200

    status, job = await http("POST", f"{api}/jobs", keys["alice@demo.ftq"], SFT_JOB)
    assert status == 201, job

    async def succeeded() -> bool:
        _, seen = await http("GET", f"{api}/jobs/{job['id']}", keys["alice@demo.ftq"])
        return bool(seen["state"] == "SUCCESS")

    await wait_for(succeeded, "the demo job to succeed", demo, timeout=60)
    assert await demo.stop(signal.SIGINT) == 0, demo.err
    assert "ftq demo stopped" in demo.out
    assert "Traceback" not in demo.err


async def test_demo_exit_after_stops_by_itself_on_ftq_port(env: Env) -> None:
    port = free_port()
    demo = await env.with_(FTQ_PORT=str(port)).start("demo", "--exit-after", "3")
    await wait_for(lambda: _exited(demo.proc.returncode), "the demo to stop", timeout=60)
    assert demo.proc.returncode == 0, demo.err
    assert "ftq demo is running" in demo.out
    assert f"API        http://127.0.0.1:{port}\n" in demo.out  # FTQ_PORT, not 8000


async def test_version(env: Env) -> None:
    shown = await env.run("--version")
    assert shown.code == 0, shown.err
    assert re.fullmatch(r"ftq \d+\.\d+\.\d+\S*\n", shown.out), shown.out


async def _exited(code: int | None) -> bool:
    return code is not None


async def test_a_second_demo_refuses_and_leaves_the_running_one_alone(env: Env) -> None:
    first = await env.start("demo", "--port", "0", "--exit-after", "100")

    async def banner() -> bool:
        return "ftq demo is running" in first.out

    await wait_for(banner, "the first demo's banner", first, timeout=60)
    url = re.search(r"API\s+(http://\S+)", first.out)
    alice = re.search(r"alice@demo\.ftq\s+(sftq_\S+)", first.out)
    assert url is not None and alice is not None
    port = url[1].rsplit(":", 1)[1]

    second = await env.run("demo", "--port", "0", "--exit-after", "3", timeout=60)
    assert second.code == 1, second.err
    lines = second.err.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0], second.err
    assert "Traceback" not in second.err

    assert (await http("GET", f"{url[1]}/readyz"))[0] == 200
    status, jobs = await http("GET", f"{url[1]}/jobs", alice[1])
    assert status == 200, jobs

    # With no DATABASE_URL, commands find the running demo's database, and say so.
    users = await env.run("users", "list")
    assert users.code == 0, users.err
    assert "alice@demo.ftq" in users.out
    assert f"the running ftq demo's (port {port}" in users.err
    audited = await env.run("audit")
    assert audited.code == 0 and "no invariant broken" in audited.out, audited.err
    assert await first.stop(signal.SIGINT) == 0, first.err

    again = await env.run("demo", "--port", "0", "--exit-after", "1", timeout=60)
    assert again.code == 0, again.err  # the lock died with the first demo
