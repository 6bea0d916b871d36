"""The demo directory's claim: one demo at a time, and the record CLI commands find; which
database a command says it opened."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from service.cli.app import which_database
from service.database import describe_url
from service.demo_dir import RECORD_NAME, DemoBusy, DemoRecord, claim, running_demo
from service.settings import Settings


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


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://ftq:s3cret@db.x:6543/queue", "database queue on db.x:6543 as ftq"),
        ("postgresql://ftq:s3cret@db/queue?sslmode=require", "database queue on db:5432 as ftq"),
        ("postgresql://postgres:@/postgres?host=/tmp/pg", "database postgres on socket /tmp/pg as postgres"),  # noqa: E501
        ("postgresql:///ftq", "database ftq on the default local socket"),
        ("postgresql://u@h/?dbname=x&password=s3cret", "database x on h:5432 as u"),
    ],
)  # fmt: skip
def test_a_database_is_described_without_its_password(url: str, said: str) -> None:
    assert describe_url(url) == said
    assert "s3cret" not in describe_url(url)


def test_commands_without_database_url_use_the_running_demos_database(tmp_path: Path) -> None:
    held = claim(tmp_path)
    url = "postgresql://postgres:@/postgres?host=/tmp/demo"
    held.record(DemoRecord(pid=7, port=8123, api="http://127.0.0.1:8123", database_url=url))
    try:
        opened, said = which_database(Settings(data_dir=tmp_path))
        assert opened == url
        assert "socket /tmp/demo" in said and "ftq demo" in said and "port 8123" in said
        given = "postgresql://ftq:s3cret@db/queue"
        opened, said = which_database(Settings(data_dir=tmp_path, database_url=given))
        assert opened == given and said == "database queue on db:5432 as ftq (DATABASE_URL)"
    finally:
        held.release()
