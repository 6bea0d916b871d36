from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from events.migrations import apply_migrations, discover
from service.database import MIGRATION_SOURCES, is_migrated, migrate


async def test_migrations_apply_once_on_an_empty_database(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert not await is_migrated(conn)
        applied = await migrate(conn)
        assert "events/0001_event_log" in applied
        assert await is_migrated(conn)
        assert await migrate(conn) == []
        columns = await conn.fetch(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name = 'events' ORDER BY ordinal_position"
        )
        assert [(c[0], c[1], c[2]) for c in columns] == [
            ("position", "bigint", "NO"),
            ("transaction_id", "xid8", "NO"),
            ("stream_id", "text", "NO"),
            ("stream_version", "integer", "NO"),
            ("type", "text", "NO"),
            ("schema_version", "smallint", "NO"),
            ("data", "jsonb", "NO"),
            ("metadata", "jsonb", "NO"),
            ("recorded_at", "timestamp with time zone", "NO"),
        ]
    finally:
        await conn.close()


async def test_concurrent_runners_apply_each_migration_once(empty_db_url: str) -> None:
    conns = [await asyncpg.connect(empty_db_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [label for result in results for label in result]
        assert sorted(applied) == sorted(m.label for m in discover(MIGRATION_SOURCES))
        assert await is_migrated(conns[0])
    finally:
        for c in conns:
            await c.close()


async def test_runner_orders_records_and_rolls_back_failures(
    empty_db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0002_second.sql").write_text("INSERT INTO demo VALUES (2);")
    (tmp_path / "0001_first.sql").write_text(
        "CREATE TABLE demo (n int); INSERT INTO demo VALUES (1);"
    )
    sources = [("demo", tmp_path), ("absent", tmp_path / "missing")]
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await apply_migrations(conn, sources) == ["demo/0001_first", "demo/0002_second"]
        (tmp_path / "0003_broken.sql").write_text("INSERT INTO demo VALUES (3); SELECT 1/0;")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await apply_migrations(conn, sources)
        assert await conn.fetchval("SELECT array_agg(n ORDER BY n) FROM demo") == [1, 2]
        recorded = await conn.fetch("SELECT component, version, name FROM schema_migrations")
        assert sorted(tuple(r) for r in recorded) == [("demo", 1, "first"), ("demo", 2, "second")]
    finally:
        await conn.close()


def test_discover_refuses_bad_names_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("")
    with pytest.raises(ValueError, match="NNNN_name"):
        discover([("x", tmp_path)])
    (tmp_path / "1_bad.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0001_b.sql").write_text("")
    with pytest.raises(ValueError, match="two x migrations"):
        discover([("x", tmp_path)])
