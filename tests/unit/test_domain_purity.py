"""The domain (events/domain) reads no clock and draws no randomness: times and ids arrive
inside commands. import-linter forbids the modules; this scan also catches the calls that
need no import of their own, such as ``datetime.now()`` on an imported ``datetime``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import events.domain

DOMAIN = Path(events.domain.__file__).parent
IMPURE_MODULES = frozenset({"time", "random", "secrets", "uuid", "uuid6", "os", "socket"})
# Methods that read the clock (datetime.now/utcnow/today, date.today, time.* lookalikes) or
# draw randomness, whichever object they are called on.
IMPURE_ATTRS = frozenset(
    {
        "now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp",
        "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns",
        "process_time", "urandom", "uuid1", "uuid4", "uuid6", "uuid7", "getrandbits",
        "randbytes", "token_hex", "token_bytes", "token_urlsafe",
    }
)  # fmt: skip


def impurities(source: str) -> list[str]:
    """Each clock read or random draw in `source`, as 'line: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in IMPURE_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in IMPURE_MODULES:
                found.append(f"{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in IMPURE_ATTRS:
                found.append(f"{node.lineno}: {ast.unparse(func)}()")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in IMPURE_MODULES
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "import time\nx = time.monotonic()",
        "from time import perf_counter",
        "import random\nx = random.random()",
        "import secrets",
        "from uuid6 import uuid7\nx = uuid7()",
        "x = os.urandom(4)",
    ],
)
def test_the_scan_finds_clock_reads_and_randomness(source: str) -> None:
    assert impurities(source)


def test_the_scan_lets_pure_code_through() -> None:
    pure = "from datetime import datetime, timedelta\ndef f(at: datetime) -> datetime:\n"
    assert impurities(pure + "    return at + timedelta(seconds=1)\n") == []


def test_the_domain_reads_no_clock_and_draws_no_randomness() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert len(files) > 10  # the scan reaches the whole package, subpackages included
    found = {
        str(path.relative_to(DOMAIN)): hits
        for path in files
        if (hits := impurities(path.read_text(encoding="utf-8")))
    }
    assert found == {}
