"""The demo directory's claim: one demo at a time, and the record CLI commands find."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from service.demo_dir import RECORD_NAME, DemoBusy, DemoRecord, claim, running_demo


def test_a_second_claim_is_refused_naming_the_first_demos_port(tmp_path: Path) -> None:
    first = claim(tmp_path)
    assert running_demo(tmp_path) is None  # starting: no database to offer yet
    url = "postgresql://postgres:@/postgres?host=/x"
    first.record(DemoRecord(pid=1, port=8123, api="http://127.0.0.1:8123", database_url=url))
    with pytest.raises(DemoBusy, match="on port 8123") as busy:
        claim(tmp_path)
    assert "\n" not in str(busy.value)
    assert running_demo(tmp_path) == DemoRecord(
        pid=1, port=8123, api="http://127.0.0.1:8123", database_url=url
    )
    assert stat.S_IMODE((tmp_path / RECORD_NAME).stat().st_mode) == 0o600
    first.release()
    assert running_demo(tmp_path) is None
    claim(tmp_path).release()


def test_a_stale_record_of_a_dead_demo_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "demo.lock").touch()
    (tmp_path / RECORD_NAME).write_bytes(b'{"pid": 1, "port": 1, "database_url": "postgresql://x"}')
    assert running_demo(tmp_path) is None
    claim(tmp_path).release()
