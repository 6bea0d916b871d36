"""A small migration runner: numbered ``NNNN_name.sql`` files per component, applied in order.

Each migration runs in its own transaction holding a transaction-scoped advisory lock, and is
recorded in ``schema_migrations``; concurrent runners queue on the lock and skip what the
winner applied. Migrations are append-only: never edit one that has shipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from events.store import locks
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
    return [m for m in discover(sources) if (m.component, m.version) not in done]


async def apply_migrations(conn: Connection, sources: Sequence[Source]) -> list[str]:
    """Apply every pending migration; returns the labels (``events/0001_event_log``) applied."""
    done: list[str] = []
    for migration in await pending(conn, sources):
        sql = migration.path.read_text(encoding="utf-8")
        async with conn.transaction():
            await conn.execute(QUERIES["migrations_lock"], *locks.MIGRATIONS)
            await conn.execute(QUERIES["migrations_table"])
            if (migration.component, migration.version) in await applied(conn):
                continue  # a concurrent runner got there first
            await conn.execute(sql)
            await conn.execute(
                QUERIES["migration_record"],
                migration.component,
                migration.version,
                migration.name,
            )
        done.append(migration.label)
    return done
