"""Wake-up payloads: JSON arrays of stream ids, split under PostgreSQL's 8000-byte limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.store.log import MAX_PAYLOAD, notify_payloads, woken_streams

stream_ids = st.lists(st.text(min_size=1, max_size=300), max_size=400)


@given(stream_ids)
def test_every_stream_id_is_in_exactly_one_payload_under_the_limit(ids: list[str]) -> None:
    # (ids of at most 300 characters: up to 1,800 bytes once JSON-escaped, so all fit)
    payloads = notify_payloads(ids)
    assert all(len(p.encode()) <= MAX_PAYLOAD for p in payloads)
    woken = [s for p in payloads for s in woken_streams(p)]
    assert woken == sorted(set(ids))


def test_many_short_ids_share_a_payload() -> None:
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(1000)]
    payloads = notify_payloads(ids)
    assert len(payloads) == 5  # 39 bytes each: 205 in a payload
    assert notify_payloads([]) == []


def test_a_stream_id_that_cannot_fit_is_left_out() -> None:
    payloads = notify_payloads(["a", "x" * MAX_PAYLOAD, "b"])
    assert [s for p in payloads for s in woken_streams(p)] == ["a", "b"]


@pytest.mark.parametrize("payload", ["job-7", "[1, 2]", '{"a": 1}', '["a"'])
def test_a_payload_that_is_not_a_list_is_one_plain_stream_id(payload: str) -> None:
    assert woken_streams(payload) == [payload]  # what a replica of an older release sends
    assert woken_streams("") == []
