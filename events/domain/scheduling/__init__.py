"""Admission scheduling: the pure planner shared by the admission loop, the queue views, the
audit and the simulator. No IO, no clock, no randomness: `now` is always an argument.

Types (`model`): `Job` (queued), `Running` (in PROGRESS, with its expected end), `Limits`
(size classes: `big_job_gpus` (0 = off), `cap_small`, `cap_big`, `big_job_reserve`,
per-(user, class) overrides; a cap of None is no cap), `Policy` (`name` in `POLICIES`,
`half_life_hours`, `max_wait_hours`, `aging_hours`, `weights`), and a pass's result `Plan`
(`admit`: `Admission`s in the order to make them, each with the figures its admission event
records; `pending`: `Pending(job, queue_position, reason)`, built when read (`explain`:
`pending_placements` reads them without building the objects); `order`; `reservations` per
GPU type; `available_after` per type).

One pass, stateless::

    from events.domain.scheduling import Job, Limits, Policy, plan
    done = plan(queue, running, {"h200": 16}, Limits(big_job_gpus=8, cap_small=2,
                cap_big=1, big_job_reserve=4), Policy("strict-fifo"), now,
                estimate=estimator.estimate, usage=ledger.at(now, running))

Placing one more job (after every job of a pass in the policy's order) without planning
again: keep the `Pass`, call `pass_.step(job)`.

Stateful, for a discrete-event simulator (the same planning code)::

    state = SchedulerState(limits, policy, quota={"h200": 64, "b200": 16}, epoch=t0)
    state.arrive(job); done = state.plan(now)
    for a in done.admit: state.admit(a.job.job_id, now)
    state.finish(job_id, now); state.cancel(job_id, now)

Runtime estimates: `RuntimeEstimator` (median of the same user/kind/gpu_count, then all
users, then the default; capped by `max_runtime_minutes`), fed by `observe(...)`.
Fair-share usage: `UsageLedger` (decayed GPU-seconds, half-life). Audit: `check_admission`
returns the rules one admission breaks, given the queue and running jobs at that moment."""

from events.domain.scheduling.audit import check_admission
from events.domain.scheduling.estimate import DEFAULT_RUNTIME_MINUTES, RuntimeEstimator
from events.domain.scheduling.explain import pending_placements
from events.domain.scheduling.model import (
    CLASSES,
    DEFAULT_GPU_TYPE,
    DEFAULT_PRIORITY,
    GPU_TYPES,
    MAX_PRIORITY,
    POLICIES,
    Admission,
    Job,
    Limits,
    Pending,
    Plan,
    Policy,
    PolicyName,
    Reservation,
    Running,
    SizeClass,
)
from events.domain.scheduling.order import effective_priority, policy_order
from events.domain.scheduling.passes import Estimate, Pass, constant_estimate, plan
from events.domain.scheduling.reasons import ADMIT_REASON, PAUSED_REASON
from events.domain.scheduling.state import SchedulerState
from events.domain.scheduling.usage import UsageLedger, decayed_usage

__all__ = [
    "ADMIT_REASON",
    "CLASSES",
    "DEFAULT_GPU_TYPE",
    "DEFAULT_PRIORITY",
    "DEFAULT_RUNTIME_MINUTES",
    "GPU_TYPES",
    "MAX_PRIORITY",
    "PAUSED_REASON",
    "POLICIES",
    "Admission",
    "Estimate",
    "Job",
    "Limits",
    "Pass",
    "Pending",
    "Plan",
    "Policy",
    "PolicyName",
    "Reservation",
    "Running",
    "RuntimeEstimator",
    "SchedulerState",
    "SizeClass",
    "UsageLedger",
    "check_admission",
    "constant_estimate",
    "decayed_usage",
    "effective_priority",
    "pending_placements",
    "plan",
    "policy_order",
]
