"""The `ftq demo` data directory's claim: an exclusive lock held for the demo's whole life,
and a record of where it listens and which database it serves, so that a second demo
refuses instead of wiping a database in use, and CLI commands with no DATABASE_URL find
the running demo's database.

Both files sit beside the demo's PostgreSQL directory (which each demo wipes on start):
``<data dir>/demo.lock`` (flock'd) and ``<data dir>/demo.json`` (mode 0600)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

import msgspec

LOCK_NAME = "demo.lock"
RECORD_NAME = "demo.json"


class DemoRecord(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    port: int | None = None  # None while the demo is still starting
    api: str | None = None
    database_url: str | None = None


class DemoBusy(Exception):
    """Another live process holds the demo directory."""

    def __init__(self, data_dir: Path, other: DemoRecord | None) -> None:
        self.data_dir = data_dir
        self.other = other
        where = (
            f"on port {other.port} (pid {other.pid})"
            if other is not None and other.port is not None
            else f"(starting, pid {other.pid})"
            if other is not None
            else "(starting)"
        )
        super().__init__(
            f"another ftq demo is running {where} with the data directory {data_dir}: "
            "stop it first, or give this one its own FTQ_DATA_DIR"
        )


def _read(data_dir: Path) -> DemoRecord | None:
    try:
        return msgspec.json.decode((data_dir / RECORD_NAME).read_bytes(), type=DemoRecord)
    except (OSError, msgspec.DecodeError):
        return None


class DemoClaim:
    """The held lock on one data directory; `record` publishes what the demo serves."""

    def __init__(self, data_dir: Path, handle: IO[bytes]) -> None:
        self.data_dir = data_dir
        self._handle = handle

    def record(self, record: DemoRecord) -> None:
        path = self.data_dir / RECORD_NAME
        scratch = path.with_suffix(".tmp")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(msgspec.json.encode(record))
        scratch.replace(path)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            (self.data_dir / RECORD_NAME).unlink()
        self._handle.close()  # closing the descriptor drops the flock


def claim(data_dir: Path) -> DemoClaim:
    """Take the demo lock on `data_dir` (created if need be); DemoBusy if another process
    holds it. The lock dies with the process, so a crashed demo never blocks the next."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_NAME).open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DemoBusy(data_dir, _read(data_dir)) from None
    held = DemoClaim(data_dir, handle)
    held.record(DemoRecord(pid=os.getpid()))
    return held


def running_demo(data_dir: Path) -> DemoRecord | None:
    """The record of the demo running on `data_dir` with its database up, else None (no
    demo, a demo still starting, or a stale record left by one that died)."""
    try:
        handle = (data_dir / LOCK_NAME).open("rb")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a demo is alive
            record = _read(data_dir)
            return record if record is not None and record.database_url else None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
