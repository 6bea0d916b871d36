from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta

import msgspec

from events.domain.codec import decode
from events.domain.directory_events import SCHEDULER_STREAM, SchedulerPaused
from events.domain.job import fold
from events.domain.job_events import JobEvent
from events.store.log import RecordedEvent
from projections.replay import Replayed, apply, replay, to_json_view

try:
    from tests.unit.history import History, row
except ImportError:  # tests/unit is not a package: pytest put this folder on sys.path
    from history import History, row  # type: ignore[no-redef]


def _lifecycles() -> History:
    h = History()
    h.user("ann@x.com", cap=2)
    h.submit("j1", "ann@x.com", gpus=4)
    h.submit("j2", "bob@x.com", gpus=8)
    h.admit("j1", available=16)
    h.confirm("j1")
    h.admit("j2", available=12, in_use=4)
    h.observe("j1", 40.0)
    h.append(SCHEDULER_STREAM, SchedulerPaused(at=h.now(), by="admin@x.com"))
    h.succeed("j1")
    h.submit("j3", "ann@x.com", gpus=2)
    h.requeue("j2")
    h.cancel("j3")
    return h


def test_replay_equals_folding_each_job_stream() -> None:
    rows = _lifecycles().rows
    per_stream: dict[str, list[JobEvent]] = defaultdict(list)
    for r in rows:
        if r.type.startswith("job."):
            per_stream[r.stream_id].append(decode(r.type, r.schema_version, r.data))  # type: ignore[arg-type]

    model = replay(rows)

    assert model.jobs == {stream: fold(events) for stream, events in per_stream.items()}
    assert model.position == len(rows) == model.events
    assert model.scheduler.paused
    assert {j: s.status for j, s in model.jobs.items()} == {
        "j1": "SUCCESS",
        "j2": "QUEUED",
        "j3": "CANCELLED",
    }
    assert model.users["u-ann"].cap == 2
    assert model.users["u-bob"].email == "bob@x.com"


def test_until_position_reproduces_every_earlier_state() -> None:
    rows = _lifecycles().rows
    for k in range(len(rows) + 1):
        assert replay(rows, until_position=k) == replay(rows[:k])
    assert replay(rows, until_position=5).jobs["j1"].status == "QUEUED"


def test_until_position_skips_later_positions_without_stopping() -> None:
    # Read order is (transaction id, position): a later-read row can carry a lower position.
    rows = _lifecycles().rows
    shuffled = [rows[1], rows[0], *rows[2:]]
    model = replay(shuffled, until_position=1)
    assert model.events == 1
    assert model.position == 1


def test_at_reproduces_the_state_at_a_time() -> None:
    rows = _lifecycles().rows
    cut = rows[6].recorded_at
    assert replay(rows, at=cut) == replay(rows[:7])
    assert replay(rows, at=cut - timedelta(days=1)) == Replayed()


def test_apply_one_event_at_a_time_matches_replay() -> None:
    rows = _lifecycles().rows
    model = Replayed()
    for r in rows:
        apply(model, r, decode(r.type, r.schema_version, r.data))
    assert model == replay(rows)


def test_old_schema_versions_are_upcast_on_replay() -> None:
    v1 = {
        "type": "job.submitted",
        "at": "2025-01-01T00:00:00Z",
        "job_id": "old",
        "user_id": "u",
        "user_email": "u@x.com",
        "kind": "DPO",
        "display_name": None,
        "gpus": 2,
        "payload": {"a": 1},
    }
    placeholder = row(1, "old", 1, SchedulerPaused(at=History().now(), by="x"))
    old: RecordedEvent = msgspec.structs.replace(
        placeholder, type="job.submitted", schema_version=1, data=json.dumps(v1).encode()
    )
    job = replay([old]).jobs["old"]
    assert (job.gpu_count, job.fireworks_payload, job.kind) == (2, {"a": 1}, "DPO")


def test_json_view_is_fifo_ordered_and_has_no_payloads() -> None:
    h = _lifecycles()
    view = to_json_view(replay(h.rows))

    assert view["position"] == len(h.rows)
    assert [j["id"] for j in view["jobs"]] == ["j1", "j2", "j3"]
    assert view["jobs"][0] == {
        "id": "j1",
        "user": "ann@x.com",
        "kind": "SFT",
        "state": "SUCCESS",
        "gpu_count": 4,
        "created_at": view["jobs"][0]["created_at"],
        "started_at": view["jobs"][0]["started_at"],
        "completed_at": view["jobs"][0]["completed_at"],
        "error": None,
        "fireworks_job_name": "accounts/a/supervisedFineTuningJobs/ftq-j1",
        "fireworks_state": "JOB_STATE_COMPLETED",
        "progress": 100.0,
        "display_name": "job j1",
    }
    assert view["jobs"][0]["created_at"] < view["jobs"][0]["started_at"]
    assert view["jobs"][1]["error"] == "quota"
    assert view["users"] == [
        {"id": "u-ann", "email": "ann@x.com", "role": "member", "cap": 2},
        {"id": "u-bob", "email": "bob@x.com", "role": "member", "cap": None},
    ]
    text = json.dumps(view)
    assert "do-not-show" not in text
    assert "fireworks_payload" not in text
