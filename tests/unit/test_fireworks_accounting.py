"""Fireworks' own accounting fields: parsed from the wire, reported by the simulator."""

from __future__ import annotations

import msgspec

from service.fireworks.models import FireworksJob
from service.fireworks.simulator.jobs import COST_PER_GPU_HOUR, SimJob


def sim(kind: str) -> SimJob:
    return SimJob(
        kind=kind,  # type: ignore[arg-type]
        job_id="j1",
        account_id="acct",
        payload={},
        gpus=4,
        created_at=0.0,
        run_start=0.0,
        job_seconds=3600.0,
    )


def test_accelerator_seconds_and_estimated_cost_are_read_from_the_wire() -> None:
    job = msgspec.json.decode(
        b'{"state": "JOB_STATE_COMPLETED", "acceleratorSeconds": {"NVIDIA_H100_80GB": "120",'
        b' "NVIDIA_H200_141GB": "30"}, "estimatedCost": {"currencyCode": "USD",'
        b' "units": "3", "nanos": 500000000}}',
        type=FireworksJob,
    )
    assert job.accelerator_total == 150.0
    assert job.cost == 3.5
    assert FireworksJob(state="JOB_STATE_RUNNING").accelerator_total is None
    assert FireworksJob(state="JOB_STATE_RUNNING").cost is None


def test_the_simulator_reports_plausible_figures_once_a_job_ended() -> None:
    rft, sft = sim("RFT"), sim("SFT")
    assert "acceleratorSeconds" not in rft.view(1800.0)
    ended = msgspec.convert(rft.view(7200.0), FireworksJob)
    assert ended.accelerator_total == 4 * 3600.0
    cost = msgspec.convert(sft.view(7200.0), FireworksJob).cost
    assert cost is not None and abs(cost - 4 * COST_PER_GPU_HOUR) < 1e-6
