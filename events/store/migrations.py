"""A small migration runner: numbered ``NNNN_name.sql`` files per component, applied in order.

Each migration runs in its own transaction holding a transaction-scoped advisory lock, and is
recorded in ``schema_migrations`` with the SHA-256 of its file; concurrent runners queue on
the lock and skip what the winner applied. Migrations are append-only: never edit one that has
shipped. Every run first compares the recorded checksums with the files and refuses
(``MigrationEdited``, naming the file) before applying anything if one differs. Rows recorded
before checksums were kept get the current file's checksum on their first run (a backfill:
from then on the file is pinned).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from events.store import locks
from events.store.errors import EventStoreError
from events.store.sql import QUERIES

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
Source = tuple[str, Path]


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.component}/{self.version:04d}_{self.name}"

    @property
    def key(self) -> tuple[str, int]:
        return (self.component, self.version)

    def checksum(self) -> str:
        """SHA-256 of the file, line endings normalised (a CRLF checkout is not an edit)."""
        return hashlib.sha256(self.path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


class MigrationEdited(EventStoreError):
    """An applied migration's file no longer has the content that was applied."""

    def __init__(self, migration: Migration, recorded: str, actual: str) -> None:
        self.migration = migration
        super().__init__(
            f"migration {migration.label} was edited after it was applied: {migration.path}"
            f" has checksum {actual[:16]}, the database recorded {recorded[:16]}. Applied"
            " migrations are append-only: restore the file and put the change in a new one."
        )


def discover(sources: Sequence[Source]) -> list[Migration]:
    """Every migration file of every component, in order; a missing directory has none."""
    found: list[Migration] = []
    for component, directory in sources:
        versions: dict[int, Path] = {}
        paths = sorted(directory.glob("*.sql")) if directory.is_dir() else []
        for path in paths:
            match = _FILE.match(path.name)
            if match is None:
                raise ValueError(f"migration file not named NNNN_name.sql: {path}")
            version = int(match[1])
            if version in versions:
                raise ValueError(f"two {component} migrations numbered {version}: {path}")
            versions[version] = path
            found.append(Migration(component, version, match[2], path))
    return found


async def applied(conn: Connection) -> set[tuple[str, int]]:
    """(component, version) of every recorded migration; empty before the first run."""
    if not await conn.fetchval(QUERIES["migrations_table_exists"]):
        return set()
    return {(r[0], r[1]) for r in await conn.fetch(QUERIES["migrations_applied"])}


async def pending(conn: Connection, sources: Sequence[Source]) -> list[Migration]:
    done = await applied(conn)
    return [m for m in discover(sources) if m.key not in done]


async def verify_checksums(conn: Connection, migrations: Sequence[Migration]) -> None:
    """Refuse (``MigrationEdited``) if an applied migration's file changed; record the
    checksum of applied migrations that have none yet. Recorded versions with no file here
    (another component, or a file removed) are not checked."""
    if not await conn.fetchval(QUERIES["migrations_table_exists"]):
        return  # an empty database: nothing applied, nothing to compare
    files = {m.key: m for m in migrations}
    async with conn.transaction():
        await conn.execute(QUERIES["migrations_lock"], *locks.MIGRATIONS)
        await conn.execute(QUERIES["migrations_table"])  # adds `checksum` to an old table
        for component, version, recorded in await conn.fetch(QUERIES["migrations_checksums"]):
            migration = files.get((component, version))
            if migration is None:
                continue
            actual = migration.checksum()
            if recorded is None:
                await conn.execute(
                    QUERIES["migration_checksum_backfill"], component, version, actual
                )
            elif recorded != actual:
                raise MigrationEdited(migration, recorded, actual)


async def apply_migrations(conn: Connection, sources: Sequence[Source]) -> list[str]:
    """Check the applied migrations' checksums, then apply every pending migration; returns
    the labels (``events/0001_event_log``) applied."""
    found = discover(sources)
    await verify_checksums(conn, found)
    done_before = await applied(conn)
    done: list[str] = []
    for migration in (m for m in found if m.key not in done_before):
        sql = migration.path.read_text(encoding="utf-8")
        async with conn.transaction():
            await conn.execute(QUERIES["migrations_lock"], *locks.MIGRATIONS)
            await conn.execute(QUERIES["migrations_table"])
            if migration.key in await applied(conn):
                continue  # a concurrent runner got there first
            await conn.execute(sql)
            await conn.execute(
                QUERIES["migration_record"],
                migration.component,
                migration.version,
                migration.name,
                migration.checksum(),
            )
        done.append(migration.label)
    return done
