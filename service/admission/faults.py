"""TEST-ONLY crash injection for the e2e reliability suite, built by the composition root
(service.app) from the environment and handed to the admission loop as its checkpoint."""

from __future__ import annotations

import asyncio
import os
from typing import Final

import structlog

from service.admission.admit import STEPS, Checkpoint
from service.admission.limits import STEPS as LIMIT_STEPS

log = structlog.get_logger(__name__)

FAULT_STEP_ENV: Final = "FTQ_FAULT_STEP"
FAULT_ACTION_ENV: Final = "FTQ_FAULT_ACTION"


def fault_checkpoint_from_env(environ: dict[str, str] | None = None) -> Checkpoint | None:
    """TEST-ONLY crash injection for the e2e reliability suite (tests/e2e/test_replicas.py).

    `FTQ_FAULT_STEP=<one of admit.STEPS or limits.STEPS>` makes the leader die at that step
    (of its first admission, or of its first runtime-limit cancel): `FTQ_FAULT_ACTION=exit`
    (default) ends the process with `os._exit(137)` (as if SIGKILLed: no cleanup, the leader
    lock goes with the connection), `hang` blocks the admission loop forever (the process stays
    up holding leadership). Unset in production: then this returns None and the no-op
    checkpoint is used."""
    env = os.environ if environ is None else environ
    step = env.get(FAULT_STEP_ENV, "")
    if not step:
        return None
    if step not in STEPS + LIMIT_STEPS:
        raise ValueError(f"{FAULT_STEP_ENV} must be one of {STEPS + LIMIT_STEPS}, not {step!r}")
    action = env.get(FAULT_ACTION_ENV, "exit")
    if action not in ("exit", "hang"):
        raise ValueError(f"{FAULT_ACTION_ENV} must be 'exit' or 'hang', not {action!r}")

    async def checkpoint(at: str, job_id: str) -> None:
        if at != step:
            return
        log.critical("admission.fault_injected", step=at, job_id=job_id, action=action)
        if action == "exit":
            os._exit(137)
        await asyncio.Event().wait()  # hang: never returns

    return checkpoint
