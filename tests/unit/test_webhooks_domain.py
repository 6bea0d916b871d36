"""The pure webhook rules: who receives what, delivery ids, signatures, backoff, URL rules."""

from __future__ import annotations

from typing import get_args

import msgspec
import pytest

from events.domain.job import JobState, evolve
from events.domain.job_events import TERMINAL, JobEvent
from events.domain.webhooks import (
    TERMINAL_TYPES,
    address_problem,
    backoff_s,
    delivery_id,
    receives,
    signature,
    url_problem,
)

TYPES = frozenset({"job.succeeded"})


def test_signature_is_githubs_hmac_sha256() -> None:
    # The example of GitHub's "Validating webhook deliveries" documentation.
    got = signature(b"It's a Secret to Everybody", b"Hello, World!")
    assert got == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


@pytest.mark.parametrize(
    ("scope", "user_id", "job_owner", "type_", "expected"),
    [
        ("own", None, "alice", "job.succeeded", True),
        ("own", None, "bob", "job.succeeded", False),
        ("own", None, "alice", "job.failed", False),
        ("own", None, None, "job.succeeded", False),  # not a job's event
        ("user", "bob", "bob", "job.succeeded", True),
        ("user", "bob", "alice", "job.succeeded", False),
        ("all", None, "bob", "job.succeeded", True),
        ("all", None, None, "job.succeeded", False),
    ],
)
def test_receives(
    scope: str, user_id: str | None, job_owner: str | None, type_: str, expected: bool
) -> None:
    assert receives(scope, "alice", user_id, TYPES, type_, job_owner) is expected  # type: ignore[arg-type]


def test_delivery_ids_are_stable_per_event_and_subscription() -> None:
    assert delivery_id("w1", 7) == delivery_id("w1", 7)
    assert len({delivery_id("w1", 7), delivery_id("w1", 8), delivery_id("w2", 7)}) == 3
    assert len(delivery_id("w1", 7)) == 36 and delivery_id("w1", 7).count("-") == 4


def test_backoff_doubles_to_a_cap_with_jitter_and_twelve_attempts_span_about_a_day() -> None:
    assert backoff_s(1, 0.5) == 30.0 and backoff_s(2, 0.5) == 60.0
    assert backoff_s(1, 0.0) == 15.0 and backoff_s(1, 0.999) < 45.0
    assert backoff_s(20, 0.5) == 6 * 3600.0
    day = sum(backoff_s(n, 0.5) for n in range(1, 12))  # waits between 12 attempts
    assert 12 * 3600 < day < 36 * 3600


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/ftq", None),
        ("http://example.com:8080/x?y=1", None),
        ("ftp://example.com/x", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://token@example.com/", "credentials"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "not a valid URL"),
    ],
)
def test_url_rules(url: str, problem: str | None) -> None:
    found = url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.0.0.1", True),
        ("192.168.1.1", True),
        ("172.16.0.5", True),
        ("169.254.169.254", True),  # cloud metadata
        ("fe80::1%eth0", True),
        ("0.0.0.0", True),
        ("93.184.216.34", False),
        ("2606:2800:220:1:248:1893:25c8:1946", False),
    ],
)
def test_address_rules(address: str, refused: bool) -> None:
    assert (address_problem(address) is not None) is refused


def test_every_job_event_type_can_be_subscribed_to() -> None:
    """A new job event (e.g. job.stuck_detected, for operators' alerts) is subscribable."""
    from typing import get_args  # noqa: PLC0415

    from events.domain.job_events import JobEvent  # noqa: PLC0415
    from events.domain.webhooks import JOB_EVENT_TYPES  # noqa: PLC0415

    tags = {str(cls.__struct_config__.tag) for cls in get_args(JobEvent)}
    assert set(JOB_EVENT_TYPES) == tags
    assert len(JOB_EVENT_TYPES) == len(tags)


def _placeholder(t: msgspec.inspect.Type) -> object:
    """Some valid value of a field's type (to build every event type generically)."""
    match t:
        case msgspec.inspect.StrType():
            return "x"
        case msgspec.inspect.IntType():
            return 1
        case msgspec.inspect.FloatType():
            return 1.0
        case msgspec.inspect.BoolType():
            return False
        case msgspec.inspect.DateTimeType():
            return "2026-01-01T00:00:00Z"
        case msgspec.inspect.LiteralType():
            return t.values[0]
        case msgspec.inspect.UnionType():
            return None if t.includes_none else _placeholder(t.types[0])
        case (
            msgspec.inspect.ListType()
            | msgspec.inspect.TupleType()
            | msgspec.inspect.VarTupleType()
        ):
            return []
        case msgspec.inspect.DictType():
            return {}
        case msgspec.inspect.StructType():
            return {f.encode_name: _placeholder(f.type) for f in t.fields if f.required}
    return None


def test_the_default_types_are_every_event_that_ends_a_job() -> None:
    """Each job event type is applied to a running job: exactly those of TERMINAL_TYPES end
    it (SUCCESS, FAIL or CANCELLED)."""
    running = JobState(job_id="j", status="PROGRESS", version=3)
    ending = set()
    for cls in get_args(JobEvent):
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        values = {f.encode_name: _placeholder(f.type) for f in info.fields if f.required}
        event = msgspec.convert(values, cls)
        if evolve(running, event).status in TERMINAL:
            ending.add(str(cls.__struct_config__.tag))
    assert ending == set(TERMINAL_TYPES)
