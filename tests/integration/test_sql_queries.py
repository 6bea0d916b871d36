"""Every named query of every `.sql` file is SQL that PostgreSQL accepts against the schema
the migrations build: each is PREPAREd (parsed, its tables, columns, functions and parameter
types resolved) on a migrated database. A misspelt column, a dropped table or a broken edit
fails here, not in the request that first runs it."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

import events.store.sql
import projections.sql
import service.sql
import service.webhooks

SOURCES: dict[str, Mapping[str, str]] = {
    "events/store/sql/queries.sql": events.store.sql.QUERIES,
    "projections/sql/queries.sql": projections.sql.QUERIES,
    "service/sql/*.sql": service.sql.QUERIES,
    "service/sql/intake.sql": service.sql.INTAKE,
    "service/webhooks/queries.sql": service.webhooks.QUERIES,
}
# Scripts of several statements cannot be PREPAREd: they run, in this order, in a transaction
# that is rolled back (each needs the ones before it: replace_live reads rebuild_tables').
SCRIPTS = ("migrations_table", "rebuild_tables", "replace_live")


def _named() -> list[tuple[str, str, str]]:
    return [
        (source, name, sql) for source, queries in SOURCES.items() for name, sql in queries.items()
    ]


async def test_each_named_query_prepares_on_the_migrated_schema(pool: asyncpg.Pool) -> None:
    refused: dict[str, str] = {}
    async with pool.acquire() as conn:
        for source, name, text in _named():
            if name in SCRIPTS:
                continue  # test_the_scripts_run
            try:
                async with conn.transaction():
                    await conn.prepare(text)
            except asyncpg.PostgresError as exc:
                refused[f"{source}: {name}"] = f"{type(exc).__name__}: {exc}"
    assert refused == {}
    assert len(_named()) > 80  # every file was loaded


async def test_the_scripts_run(pool: asyncpg.Pool) -> None:
    found = {name: sql for _, name, sql in _named() if name in SCRIPTS}
    assert sorted(found) == sorted(SCRIPTS)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            for name in SCRIPTS:
                await conn.execute(found[name])
        finally:
            await tx.rollback()
