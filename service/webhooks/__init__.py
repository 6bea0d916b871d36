"""Signed webhooks delivered from the event log: subscriptions (`subscriptions`), the sealed
signing secrets (`sealing`) and the one deliverer per database (`deliverer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from events.store.sql import load_queries

QUERIES: Final = load_queries(Path(__file__).parent / "queries.sql")
