"""SQL the service reads the projections with: the named blocks of every `.sql` file here
(`queries.sql`, and one file per feature such as `operations.sql`), loaded once at import."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Final

from events.store.sql import load_queries


def _load_all(directory: Path) -> MappingProxyType[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, sql in load_queries(path).items():
            if name in merged:
                raise ValueError(f"query {name!r} is defined twice ({path.name})")
            merged[name] = sql
    return MappingProxyType(merged)


QUERIES: Final = _load_all(Path(__file__).parent)
INTAKE: Final = load_queries(Path(__file__).parent / "intake.sql")
