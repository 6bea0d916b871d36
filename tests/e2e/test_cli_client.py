"""The HTTP client commands against `ftq serve` + `ftq fireworks-sim`: submit, watch, cancel,
jobs, show, queue."""

from __future__ import annotations

import json
import signal

from tests.e2e.conftest import SFT_JOB, Proc, Stack, http, wait_for


async def _shows(proc: Proc, text: str) -> bool:
    return text in proc.out


async def _exited(proc: Proc) -> bool:
    return proc.proc.returncode is not None


async def submit(stack: Stack, key: str, *extra: str) -> str:
    body = stack.env.home / "job.json"
    body.write_text(json.dumps(SFT_JOB))
    result = await stack.env.with_(SFTQ_API_KEY=key).run("submit", str(body), *extra)
    assert result.code == 0, result.err
    job_id, state = result.out.split()
    assert state in {"QUEUED", "PROGRESS"}  # a retry shows the job as it is now
    return job_id


async def test_submit_then_watch_exits_with_the_final_state(stack: Stack) -> None:
    alice = stack.env.with_(SFTQ_API_KEY=stack.alice)
    # long enough to restart `ftq serve` while the first job runs
    assert (await http("POST", f"{stack.sim_url}/_sim/config", body={"job_seconds": 10}))[0] < 300
    first = await submit(stack, stack.alice, "--idempotency-key", "k1")
    assert await submit(stack, stack.alice, "--idempotency-key", "k1") == first
    second = await submit(stack, stack.alice)  # waits: alice's cap is 1

    queue = await alice.run("queue")
    assert queue.code == 0, queue.err
    assert second in queue.out

    cancelled = await alice.run("cancel", second)
    assert cancelled.code == 0, cancelled.err
    assert cancelled.out.split() == [second, "CANCELLED"]
    watched = await alice.run("watch", second, timeout=30)
    assert watched.code == 3, watched.err
    assert watched.last_line == f"{second} CANCELLED"

    watching = await alice.start("watch", first)
    await wait_for(lambda: _shows(watching, "PROGRESS"), "watch to show PROGRESS", watching)
    # killed, so the stream drops at once (a graceful stop may let the job finish on the old
    # server within its grace period); watch resumes with Last-Event-ID
    await stack.restart(signal.SIGKILL)
    await wait_for(lambda: _exited(watching), "watch to end", timeout=60)
    assert watching.proc.returncode == 0, watching.out + watching.err
    assert watching.out.splitlines()[-1] == f"{first} SUCCESS"
    assert "reconnecting" in watching.err
    assert watching.out.count("PROGRESS") == 1  # resumed, not replayed from the start

    shown = await alice.run("show", first)
    assert json.loads(shown.out)["state"] == "SUCCESS"
    listed = await alice.run("jobs", "--state", "SUCCESS")
    assert first in listed.out and second not in listed.out

    again = await alice.run("cancel", first)
    assert again.code == 1
    assert again.err.startswith("INVALID_STATE: ")


async def test_client_errors_are_code_and_message(stack: Stack) -> None:
    bad = await stack.env.with_(SFTQ_API_KEY="sftq_nope").run("jobs")
    assert bad.code == 1 and bad.err.startswith("UNAUTHENTICATED: ")
    missing = await stack.env.run("jobs")
    assert missing.code == 2 and "SFTQ_API_KEY" in missing.err
    body = stack.env.home / "bad.json"
    body.write_text(json.dumps({"kind": "SFT", "fireworks_payload": {}}))
    invalid = await stack.env.with_(SFTQ_API_KEY=stack.alice).run("submit", str(body))
    assert invalid.code == 2 and invalid.err.startswith("VALIDATION_ERROR: ")
