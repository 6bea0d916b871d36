"""`--json` on the client commands prints the API's own answer (its field names), one JSON
document on stdout; `ftq jobs --all` follows the pagination to the end."""

from __future__ import annotations

import json

from tests.e2e.conftest import SFT_JOB, Stack, http


async def test_json_output_is_the_apis_answer(stack: Stack) -> None:
    assert (await http("POST", f"{stack.sim_url}/_sim/config", body={"job_seconds": 30}))[0] < 300
    alice = stack.env.with_(SFTQ_API_KEY=stack.alice)
    body = stack.env.home / "job.json"
    body.write_text(json.dumps(SFT_JOB))

    submitted = []
    for _ in range(3):
        result = await alice.run("submit", str(body), "--json")
        assert result.code == 0, result.err
        job = json.loads(result.out)
        assert job["kind"] == "SFT" and job["state"] in {"QUEUED", "PROGRESS"}
        submitted.append(job["id"])

    shown = await alice.run("show", submitted[0], "--json")
    assert json.loads(shown.out)["id"] == submitted[0]

    one_page = json.loads((await alice.run("jobs", "--limit", "1", "--json")).out)
    assert [job["id"] for job in one_page] == [submitted[-1]]  # newest first, one page
    every = json.loads((await alice.run("jobs", "--limit", "1", "--all", "--json")).out)
    assert [job["id"] for job in every] == submitted[::-1]

    queued = json.loads((await alice.run("queue", "--json")).out)
    assert isinstance(queued, list)
    assert {entry["id"] for entry in queued} <= set(submitted)
    assert all("queue_position" in entry for entry in queued)
    assert all(entry["gpu_type"] == "h200" for entry in queued)
    table = await alice.run("queue")
    assert table.code == 0 and "policy: strict-fifo" in table.out, table.out

    figures = json.loads((await alice.run("capacity", "--json")).out)
    assert {"quota", "in_use", "available", "source", "types"} <= figures.keys()

    cancelled = await alice.run("cancel", submitted[-1], "--json")
    assert cancelled.code == 0, cancelled.err
    assert json.loads(cancelled.out)["id"] == submitted[-1]
    assert json.loads(cancelled.out)["state"] in {"CANCELLED", "PROGRESS"}
