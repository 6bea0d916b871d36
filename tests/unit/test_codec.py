"""Events round-trip; old schema versions are upcast at decode; bad rows give typed errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.domain import codec
from events.domain.directory_events import KeyRevoked
from events.domain.job_events import AdmissionReason, AdmissionStarted, JobSubmitted

NOW = datetime(2026, 11, 23, tzinfo=UTC)
SUBMITTED = JobSubmitted(
    at=NOW, job_id="j", user_id="u", user_email="a@x.io", kind="DPO", display_name=None,
    gpu_count=8, fireworks_payload={"dataset": "d"},
)  # fmt: skip


@pytest.mark.parametrize(
    "event",
    [
        SUBMITTED,
        AdmissionStarted(
            at=NOW,
            fireworks_job_id="j",
            fireworks_job_name="n",
            reason=AdmissionReason(policy="p", quota=8, in_use=1, available=7, queue_position=2),
        ),
        KeyRevoked(at=NOW, key_id="k", user_id="u"),
    ],
)
def test_round_trip(event: codec.AnyEvent) -> None:
    type_ = codec.event_type(event)
    assert codec.decode(type_, codec.schema_version(type_), codec.encode(event)) == event


def test_v1_job_submitted_is_upcast() -> None:
    v1 = (
        b'{"type":"job.submitted","at":"2026-11-23T00:00:00Z","job_id":"j","user_id":"u",'
        b'"user_email":"a@x.io","kind":"DPO","display_name":null,"gpus":8,'
        b'"payload":{"dataset":"d"}}'
    )
    assert codec.schema_version("job.submitted") == 2
    assert codec.decode("job.submitted", 1, v1) == SUBMITTED


@pytest.mark.parametrize(
    ("type_", "version", "data"),
    [
        ("job.exploded", 1, b"{}"),  # unknown type
        ("job.submitted", 2, b'{"type":"job.submitted","at":"x"}'),  # malformed data
        ("job.submitted", 3, codec.encode(SUBMITTED)),  # newer than this ftq
        ("job.cancelled", 1, codec.encode(SUBMITTED)),  # row type disagrees with the data
    ],
)
def test_bad_rows_are_typed_errors(type_: str, version: int, data: bytes) -> None:
    with pytest.raises(codec.UnknownEventType):
        codec.decode(type_, version, data)
