"""A pool worker started with `service.child_process.exit_with_parent` (the ETA forecaster's
process) ends when the server that made it is killed, instead of waiting forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_PARENT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from service.child_process import exit_with_parent

if __name__ == "__main__":
    watched = sys.argv[1] == "watched"
    pool = ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent if watched else None,
        initargs=(os.getpid(),) if watched else (),
    )
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _worker_after_parent_killed(mode: str, tmp_path: Path) -> tuple[int, bool]:
    """Start a parent making a worker (`mode`: watched or not), SIGKILL the parent; the
    worker's pid and whether it is still alive 5 s later."""
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        [sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    ) as parent:  # fmt: skip
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return worker, _alive(worker)


def test_a_watched_worker_ends_with_its_killed_parent(tmp_path: Path) -> None:
    _, alive = _worker_after_parent_killed("watched", tmp_path)
    assert not alive


def test_an_unwatched_worker_outlives_its_killed_parent(tmp_path: Path) -> None:
    """The control: what the watch is for (without it the worker is left behind)."""
    worker, alive = _worker_after_parent_killed("unwatched", tmp_path)
    try:
        assert alive
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
