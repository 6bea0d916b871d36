from __future__ import annotations

import re
from pathlib import Path

import pytest

from events.store.sql import QUERIES, parse_queries
from service.database import with_database

ROOT = Path(__file__).resolve().parents[2]
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def test_parse_named_blocks() -> None:
    text = "-- header\n-- name: one\nSELECT 1;\n\n-- name: two\n-- comment\nSELECT 2;\n"
    assert parse_queries(text) == {"one": "SELECT 1;", "two": "-- comment\nSELECT 2;"}


def test_duplicate_and_empty_blocks_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")
    with pytest.raises(ValueError, match="empty"):
        parse_queries("-- name: a\n\n")


SQL_FILES = sorted(
    path
    for package in ("events", "projections", "service")
    for path in (ROOT / package).rglob("*.sql")
    if "migrations" not in path.parts and _NAME.search(path.read_text())
)


def _blocks_line_by_line(text: str) -> dict[str, str]:
    """The file's blocks read another way than the loader's (line by line, not a regex
    split), so that the loader is checked against something it does not share."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[:2] == ["--", "name:"]:
            current = blocks.setdefault(words[2], [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in blocks.items()}


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_of_every_sql_file_is_loaded_whole(path: Path) -> None:
    """Each `-- name:` block of the file becomes one query holding exactly its text up to
    the next block: nothing lost, nothing of a neighbour, in file order. (That each is SQL
    the schema accepts is tests/integration/test_sql_queries.py.)"""
    text = path.read_text(encoding="utf-8")
    queries = parse_queries(text)
    expected = _blocks_line_by_line(text)
    assert list(queries) == list(expected)
    assert queries == expected
    assert len(queries) == text.count("\n-- name:") + text.startswith("-- name:")


def test_the_event_store_loads_its_file() -> None:
    path = ROOT / "events" / "store" / "sql" / "queries.sql"
    assert dict(QUERIES) == parse_queries(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "postgresql://postgres@127.0.0.1:5432/ftq_t_1",
        ),
        ("postgresql://u:p@h/db?sslmode=require", "postgresql://u:p@h/ftq_t_1?sslmode=require"),
        ("postgresql://h:5432", "postgresql://h:5432/ftq_t_1"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/tmpab/x",
            "postgresql://postgres:@/ftq_t_1?host=/tmp/tmpab/x",
        ),
    ],
)
def test_with_database(url: str, expected: str) -> None:
    assert with_database(url, "ftq_t_1") == expected
