"""`ftq requeue ID` against `ftq serve` + `ftq fireworks-sim`: a cancelled job comes back as a
new job linked to it; a live one is refused with the API's error."""

from __future__ import annotations

import json

from tests.e2e.conftest import Stack, http
from tests.e2e.test_cli_client import submit


async def test_requeue_a_cancelled_job(stack: Stack) -> None:
    alice = stack.env.with_(SFTQ_API_KEY=stack.alice)
    assert (await http("POST", f"{stack.sim_url}/_sim/config", body={"job_seconds": 30}))[0] < 300
    running = await submit(stack, stack.alice)
    waiting = await submit(stack, stack.alice)  # alice's cap is 1: it waits
    refused = await alice.run("requeue", waiting)
    assert refused.code == 1
    assert "INVALID_STATE" in refused.err and "only FAIL or CANCELLED" in refused.err

    cancelled = await alice.run("cancel", waiting)
    assert cancelled.out.split() == [waiting, "CANCELLED"], cancelled.err
    again = await alice.run("requeue", waiting)
    assert again.code == 0, again.err
    new_id, state, *rest = again.out.split()
    assert new_id != waiting and state == "QUEUED"
    assert " ".join(rest) == f"(requeued from {waiting})"

    as_json = await alice.run("requeue", waiting, "--json")
    assert as_json.code == 0, as_json.err
    job = json.loads(as_json.out)
    assert job["requeued_from"] == waiting and job["id"] not in (new_id, waiting)
    shown = json.loads((await alice.run("show", new_id, "--json")).out)
    assert shown["requeued_from"] == waiting and shown["state"] == "QUEUED"
    assert running != new_id
