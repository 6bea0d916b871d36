"""`ftq submit FILE...` and `ftq submit --ndjson FILE` through POST /jobs/batch (issue 18
item 1), against `ftq serve` + `ftq fireworks-sim`."""

from __future__ import annotations

import json

from tests.e2e.conftest import SFT_JOB, Stack, http


async def test_submit_files_and_ndjson_as_batches(stack: Stack) -> None:
    alice = stack.env.with_(SFTQ_API_KEY=stack.alice)
    home = stack.env.home
    (home / "a.json").write_text(json.dumps({**SFT_JOB, "idempotency_key": "a"}))
    (home / "b.json").write_text(json.dumps([SFT_JOB, {"kind": "SFT", "fireworks_payload": {}}]))
    result = await alice.run("submit", str(home / "a.json"), str(home / "b.json"))
    assert result.code == 2, result.err  # one item refused
    lines = result.out.splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1"]
    assert all(line.split()[2] in {"QUEUED", "PROGRESS"} for line in lines)
    assert result.err.startswith("2 VALIDATION_ERROR: ")

    again = await alice.run("submit", str(home / "a.json"), str(home / "a.json"))
    assert again.code == 0, again.err
    assert {line.split()[1] for line in again.out.splitlines()} == {lines[0].split()[1]}
    assert "already submitted" in again.out

    (home / "jobs.ndjson").write_text("\n".join(json.dumps(SFT_JOB) for _ in range(3)) + "\n")
    nd = await alice.run("submit", "--ndjson", str(home / "jobs.ndjson"))
    assert nd.code == 0, nd.err
    assert len(nd.out.splitlines()) == 3
    (home / "broken.ndjson").write_text(json.dumps(SFT_JOB) + "\n{nope\n")
    broken = await alice.run("submit", "--ndjson", str(home / "broken.ndjson"))
    assert broken.code == 2 and "line 2" in broken.err

    (home / "bad.json").write_text(json.dumps([SFT_JOB, {"kind": "XYZ"}]))
    atomic = await alice.run("submit", "--atomic", str(home / "bad.json"))
    assert atomic.code == 2 and atomic.err.startswith("VALIDATION_ERROR: ")
    status, jobs = await http("GET", f"{stack.url}/jobs?limit=1000", stack.alice)
    assert status == 200 and len(jobs) == 5


async def test_submit_after_makes_a_pipeline(stack: Stack) -> None:
    alice = stack.env.with_(SFTQ_API_KEY=stack.alice)
    home = stack.env.home
    # the SFT must still be running when the DPO is submitted
    assert (await http("POST", f"{stack.sim_url}/_sim/config", body={"job_seconds": 60}))[0] < 300
    (home / "sft.json").write_text(json.dumps(SFT_JOB))
    first = await alice.run("submit", str(home / "sft.json"))
    assert first.code == 0, first.err
    sft_id = first.out.split()[0]
    dpo = {
        "kind": "DPO",
        "fireworks_payload": {
            "dataset": "accounts/e2e/datasets/prefs",
            "warmStartFrom": f"accounts/e2e/models/{sft_id}",
        },
    }
    (home / "dpo.json").write_text(json.dumps(dpo))
    second = await alice.run("submit", str(home / "dpo.json"), "--after", sft_id, "--json")
    assert second.code == 0, second.err
    job = json.loads(second.out)
    assert job["state"] == "QUEUED"
    assert job["pending_reason"] == f"waiting for job {sft_id} to succeed"
    bad = await alice.run("submit", str(home / "dpo.json"), "--after", "nope")
    assert bad.code == 2 and "after.0" in bad.err
