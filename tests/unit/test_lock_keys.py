"""Every advisory lock ftq takes has its key in events.store.locks: the keys are distinct,
and no SQL takes an advisory lock on a literal key (each key is a parameter)."""

from __future__ import annotations

import re
from pathlib import Path

from events.store import locks

ROOT = Path(__file__).resolve().parents[2]
_LOCK_CALL = re.compile(r"pg_(?:try_)?advisory_(?:xact_)?lock(?:_shared)?\(([^;]*?)\)\s*[),;]")


def test_the_keys_are_distinct() -> None:
    keys = [v for k, v in vars(locks).items() if k.isupper()]
    assert len(keys) >= 4 and len(set(keys)) == len(keys)


def test_no_sql_takes_an_advisory_lock_on_a_literal_key() -> None:
    calls = []
    for path in ROOT.glob("*/**/*.sql"):
        if ".venv" in path.parts:
            continue
        for found in _LOCK_CALL.finditer(path.read_text(encoding="utf-8")):
            calls.append((path.name, found.group(1)))
    assert calls, "no advisory lock found: the pattern is wrong"
    literal = [(name, args) for name, args in calls if re.search(r"(?<![$\w])\d+", args)]
    assert literal == []
