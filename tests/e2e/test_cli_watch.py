"""`ftq watch` on a terminal (a pseudo-terminal rendered by a terminal emulator: one live
line, left showing the end) and piped (plain lines), and its exit codes."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import termios
import threading
import uuid

import pyte

from tests.e2e.conftest import FTQ, SFT_JOB, Env, Stack, free_port, http

COLUMNS, ROWS = 150, 40


async def _submit(stack: Stack) -> str:
    status, job = await http("POST", f"{stack.url}/jobs", stack.alice, SFT_JOB)
    assert status == 201, job
    return str(job["id"])


async def _submit_blocker(stack: Stack, seconds: float = 10) -> str:
    """A job of alice's that runs `seconds` on the simulator (cap 1: hers queue behind it
    for that long, long enough for `ftq watch` to start even on a loaded machine)."""
    config = f"{stack.sim_url}/_sim/config"
    assert (await http("POST", config, body={"job_seconds": seconds}))[0] < 300
    job_id = await _submit(stack)
    assert (await http("POST", config, body={"job_seconds": 2}))[0] < 300
    return job_id


async def _in_pty(env: Env, *args: str, timeout: float = 60) -> tuple[int, bytes]:
    """Run ftq with a pseudo-terminal as stdin, stdout and stderr; its exit code and output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    variables = {**env.vars, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS)}
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every end of the slave is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            *FTQ, *args, env=variables, cwd=env.home, stdin=slave, stdout=slave, stderr=slave
        )
        os.close(slave)
        slave = -1
        code = await asyncio.wait_for(proc.wait(), timeout)
        await asyncio.to_thread(reader.join, 10)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return code, b"".join(chunks)


def _screen(raw: bytes) -> list[str]:
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(raw)
    return [line.rstrip() for line in screen.display if line.strip()]


async def test_on_a_terminal_one_live_line_ends_showing_success_at_100(stack: Stack) -> None:
    await _submit_blocker(stack)  # alice's cap is 1: the next one queues behind this one
    job_id = await _submit(stack)
    code, raw = await _in_pty(stack.env.with_(SFTQ_API_KEY=stack.alice), "watch", job_id)
    screen = _screen(raw)
    assert code == 0, screen
    assert len(screen) == 1, screen  # no stale bar or state lines left behind
    assert screen[0].startswith(f"{job_id} SUCCESS"), screen
    assert "100%" in screen[0] and "Fireworks JOB_STATE_COMPLETED" in screen[0], screen
    assert b"QUEUED  position " in raw  # while queued it showed where and why
    assert b"in PROGRESS" in raw or b"goes first" in raw


async def test_piped_plain_lines_and_the_final_state_once(stack: Stack) -> None:
    await _submit_blocker(stack)
    job_id = await _submit(stack)
    watched = await stack.env.with_(SFTQ_API_KEY=stack.alice).run("watch", job_id)
    assert watched.code == 0, watched.err
    lines = watched.out.splitlines()
    assert lines[0].startswith("QUEUED  position "), lines
    assert "PROGRESS" in lines and lines[-1] == f"{job_id} SUCCESS", lines
    assert watched.out.count("SUCCESS") == 1
    assert "\x1b" not in watched.out + watched.err


async def test_exit_codes_no_such_job_not_authorised_unreachable(stack: Stack) -> None:
    alice = stack.env.with_(SFTQ_API_KEY=stack.alice)
    missing = await alice.run("watch", str(uuid.uuid4()))
    assert missing.code == 4 and missing.err.startswith("NOT_FOUND"), missing.err
    job_id = await _submit(stack)
    refused = await stack.env.with_(SFTQ_API_KEY="sftq_" + "x" * 43).run("watch", job_id)
    assert refused.code == 5 and refused.err.startswith("UNAUTHENTICATED"), refused.err
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = await alice.run("watch", job_id, "--url", closed)
    assert unreachable.code == 6 and "cannot reach" in unreachable.err, unreachable.err
    for result in (missing, refused, unreachable):
        assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


async def test_help_documents_the_exit_codes(env: Env) -> None:
    shown = await env.run("watch", "--help")
    assert shown.code == 0
    text = " ".join(shown.out.split())
    for words in ("0 SUCCESS", "1 FAIL", "3 CANCELLED", "4 no such job", "5 not authorised",
                  "6 server unreachable"):  # fmt: skip
        assert words in text, shown.out
