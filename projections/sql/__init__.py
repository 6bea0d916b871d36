"""SQL of the projections: migrations and named queries (loaded once at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from events.store.sql import load_queries

SQL_DIR: Final = Path(__file__).parent
QUERIES: Final = load_queries(SQL_DIR / "queries.sql")
DEPENDENCIES: Final = load_queries(SQL_DIR / "dependencies.sql")
