"""The test-only crash hook of the admission loop (FTQ_FAULT_STEP / FTQ_FAULT_ACTION): off
unless asked for, refuses unknown steps, and fires only at its own step."""

from __future__ import annotations

import asyncio

import pytest

from service.admission.admit import STEPS
from service.admission.faults import fault_checkpoint_from_env


def test_off_by_default() -> None:
    assert fault_checkpoint_from_env({}) is None
    assert fault_checkpoint_from_env({"FTQ_FAULT_STEP": ""}) is None


def test_refuses_unknown_steps_and_actions() -> None:
    with pytest.raises(ValueError, match="FTQ_FAULT_STEP"):
        fault_checkpoint_from_env({"FTQ_FAULT_STEP": "nope"})
    with pytest.raises(ValueError, match="FTQ_FAULT_ACTION"):
        fault_checkpoint_from_env({"FTQ_FAULT_STEP": STEPS[0], "FTQ_FAULT_ACTION": "explode"})


async def test_hang_fires_only_at_its_step() -> None:
    hook = fault_checkpoint_from_env({"FTQ_FAULT_STEP": "created", "FTQ_FAULT_ACTION": "hang"})
    assert hook is not None
    for step in STEPS:
        if step != "created":
            await hook(step, "job")  # returns at once
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await hook("created", "job")


async def test_the_runtime_limit_cancel_step_is_a_fault_step() -> None:
    """`FTQ_FAULT_STEP=runtime_cancel_decided`: the leader dies after recording a runtime-limit
    decision and before telling Fireworks (tests/integration/test_runtime_limits.py)."""
    hook = fault_checkpoint_from_env(
        {"FTQ_FAULT_STEP": "runtime_cancel_decided", "FTQ_FAULT_ACTION": "hang"}
    )
    assert hook is not None
    await hook("created", "job")  # another step: returns at once
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await hook("runtime_cancel_decided", "job")
