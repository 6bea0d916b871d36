from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from events.store.migrations import MigrationEdited, apply_migrations, discover
from events.store.sql import QUERIES
from projections.writers import JOB_COLUMNS
from service.database import MIGRATION_SOURCES, is_migrated, migrate
from tests.integration.schema_snapshot import SNAPSHOT, describe, migrated_schema


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
        jobs = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'jobs' ORDER BY ordinal_position"
        )
        assert tuple(c[0] for c in jobs) == JOB_COLUMNS
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


async def test_the_stream_version_domain_keeps_the_log_in_place(
    empty_db_url: str, tmp_path: Path
) -> None:
    """0003 moves the version check into a domain on a log that already has events, without
    rewriting the table, and the log refuses what it refused before."""
    events_dir = dict(MIGRATION_SOURCES)["events"]
    before = tmp_path / "events"
    before.mkdir()
    for name in ("0001_event_log.sql", "0002_stream_id_collate_c.sql"):
        (before / name).write_text((events_dir / name).read_text())
    conn = await asyncpg.connect(empty_db_url)
    try:
        await apply_migrations(conn, [("events", before)])
        await conn.execute(
            "INSERT INTO events (stream_id, stream_version, type, data)"
            " SELECT 's-' || n, 1, 't', '{}' FROM generate_series(1, 50) AS n"
        )
        files = (
            "SELECT array_agg(pg_relation_filenode(c.oid) ORDER BY c.relname) FROM pg_class c"
            " WHERE c.relname = 'events' OR c.oid IN"
            "  (SELECT indexrelid FROM pg_index WHERE indrelid = 'events'::regclass)"
        )
        files_before = await conn.fetchval(files)
        assert len(files_before) == 4  # the table and its three indexes
        assert "events/0003_stream_version_domain" in await migrate(conn)
        assert await conn.fetchval(files) == files_before
        assert await conn.fetchval("SELECT count(*) FROM events WHERE stream_version = 1") == 50
        insert = (
            "INSERT INTO events (stream_id, stream_version, type, data) VALUES ($1, $2, 't', '{}')"
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, "x", 0)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, "s-1", 1)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE events SET type = 'u'")
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


async def test_all_migrations_build_the_committed_schema_snapshot(pg_server_url: str) -> None:
    """Every migration applied to an empty database gives `schema.snapshot`. After adding a
    migration, regenerate it (`python -m tests.integration.schema_snapshot`, see its
    docstring) and review the diff."""
    assert await migrated_schema(pg_server_url) == SNAPSHOT.read_text(), (
        "the migrated schema differs from tests/integration/schema.snapshot:"
        " regenerate it with `python -m tests.integration.schema_snapshot` and review the diff"
    )


def _copy_sources(tmp_path: Path) -> list[tuple[str, Path]]:
    sources = []
    for component, directory in MIGRATION_SOURCES:
        copy = tmp_path / component
        copy.mkdir()
        for path in directory.glob("*.sql"):
            (copy / path.name).write_bytes(path.read_bytes())
        sources.append((component, copy))
    return sources


async def test_an_edited_applied_migration_is_refused_by_name(
    empty_db_url: str, tmp_path: Path
) -> None:
    sources = _copy_sources(tmp_path)
    (tmp_path / "projections" / "0099_later.sql").write_bytes(b"CREATE TABLE later (n int);\n")
    conn = await asyncpg.connect(empty_db_url)
    try:
        await apply_migrations(conn, sources)
        recorded = await conn.fetch("SELECT checksum FROM schema_migrations")
        assert recorded and all(len(r[0]) == 64 for r in recorded)
        edited = tmp_path / "projections" / "0099_later.sql"
        edited.write_text("CREATE TABLE later (n bigint);")
        (tmp_path / "projections" / "0100_next.sql").write_text("CREATE TABLE next (n int);")
        with pytest.raises(MigrationEdited, match="projections/0099_later") as refused:
            await apply_migrations(conn, sources)
        assert str(edited) in str(refused.value)
        assert await conn.fetchval("SELECT to_regclass('next')") is None  # nothing applied
        edited.write_bytes(b"CREATE TABLE later (n int);\r\n")  # restored, in a CRLF checkout
        assert await apply_migrations(conn, sources) == ["projections/0100_next"]
    finally:
        await conn.close()


async def test_checksums_are_backfilled_on_a_database_from_before_them(
    empty_db_url: str, tmp_path: Path
) -> None:
    """A database migrated before checksums were kept (no `checksum` column) upgrades: the
    column is added, every row gets its file's checksum, and from then on edits are refused."""
    sources = _copy_sources(tmp_path)
    conn = await asyncpg.connect(empty_db_url)
    try:
        await apply_migrations(conn, sources)
        await conn.execute("ALTER TABLE schema_migrations DROP COLUMN checksum")
        assert await apply_migrations(conn, sources) == []
        rows = await conn.fetch(QUERIES["migrations_checksums"])
        by_key = {m.key: m.checksum() for m in discover(sources)}
        assert {(r[0], r[1]): r[2] for r in rows} == by_key
        first = tmp_path / "events" / "0001_event_log.sql"
        first.write_text(first.read_text() + "\n-- an edit\n")
        with pytest.raises(MigrationEdited, match="events/0001_event_log"):
            await apply_migrations(conn, sources)
        assert await describe(conn) == SNAPSHOT.read_text()  # the upgrade changed no schema
    finally:
        await conn.close()
