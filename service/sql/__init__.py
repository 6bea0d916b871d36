"""SQL the service reads the projections with: named blocks loaded once at import."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from events.store.sql import load_queries

QUERIES: Final = load_queries(Path(__file__).parent / "queries.sql")
INTAKE: Final = load_queries(Path(__file__).parent / "intake.sql")
