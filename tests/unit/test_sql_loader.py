from __future__ import annotations

import pytest

from events.store.sql import QUERIES, parse_queries
from service.database import with_database


def test_parse_named_blocks() -> None:
    text = "-- header\n-- name: one\nSELECT 1;\n\n-- name: two\n-- comment\nSELECT 2;\n"
    assert parse_queries(text) == {"one": "SELECT 1;", "two": "-- comment\nSELECT 2;"}


def test_duplicate_and_empty_blocks_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")
    with pytest.raises(ValueError, match="empty"):
        parse_queries("-- name: a\n\n")


def test_event_store_queries_loaded() -> None:
    assert {"append", "read_all", "read_stream", "head_cursor"} <= set(QUERIES)
    assert all("{" not in sql or "name" not in sql for sql in QUERIES.values())


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
