"""SQL of the event log: named query blocks (``-- name: x``) loaded once at import."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Final

SQL_DIR: Final = Path(__file__).parent

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a .sql file into its ``-- name: x`` blocks; the text before the first is ignored."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        sql = body.strip()
        if not sql:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = sql
    return queries


def load_queries(path: Path) -> MappingProxyType[str, str]:
    """Read and parse a named-query file once; the result is read-only."""
    return MappingProxyType(parse_queries(path.read_text(encoding="utf-8")))


QUERIES: Final = load_queries(SQL_DIR / "queries.sql")
