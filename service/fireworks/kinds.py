"""The three Fireworks fine-tuning job kinds and how each is addressed on the wire."""

from __future__ import annotations

from typing import Final

from events.domain.job_events import Kind

KINDS: Final[tuple[Kind, ...]] = ("SFT", "DPO", "RFT")

COLLECTION: Final[dict[Kind, str]] = {
    "SFT": "supervisedFineTuningJobs",
    "DPO": "dpoJobs",
    "RFT": "reinforcementFineTuningJobs",
}
"""Path segment of each kind's collection, also the list response's array key."""

ID_PARAM: Final[dict[Kind, str]] = {
    "SFT": "supervisedFineTuningJobId",
    "DPO": "dpoJobId",
    "RFT": "reinforcementFineTuningJobId",
}
"""Query parameter that carries the caller-chosen job id on create."""

LIST_KEY: Final[dict[Kind, str]] = dict(COLLECTION)

KIND_BY_COLLECTION: Final[dict[str, Kind]] = {v: k for k, v in COLLECTION.items()}
