"""The event type → decider table: which aggregate an event of a given `type` belongs to.
Every reader that routes events (replay, rebuild, audit, the history streams) asks it,
instead of switching on the type name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from events.domain.decider import Decider
from events.domain.directory import SCHEDULER, USER
from events.domain.job import JOB
from events.domain.webhook_subscription import WEBHOOK

AnyDecider = Decider[Any, Any, Any]
DECIDERS: Final[tuple[AnyDecider, ...]] = (JOB, USER, SCHEDULER, WEBHOOK)
BY_EVENT_TYPE: Final[Mapping[str, AnyDecider]] = MappingProxyType(
    {type_: decider for decider in DECIDERS for type_ in decider.event_types}
)


def is_job_event(event_type: str) -> bool:
    return BY_EVENT_TYPE.get(event_type) is JOB
