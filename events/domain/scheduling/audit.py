"""Check one admission against the policy in force, from what was known at that moment.

Independent of the planner (`Pass`): it shares only the order and the limits. Given the jobs
still QUEUED when the admission was made (the admitted one included), the jobs in PROGRESS
(those admitted earlier in the same pass included) and the figures the admission recorded,
it names every rule the admission breaks:

- `budget`: the job fits the recorded headroom of its type;
- `class-cap`: the user had fewer jobs of the job's class in PROGRESS than the cap;
- `big-reserve`: a big admission leaves the reserve free;
- `order`: `strict-fifo` — no job of the same type ahead in the policy's order was eligible
  (under its cap and, for a big job, fitting with the reserve left), since with classes on
  only a small job that does not fit stops a pass; `backfill` — no such job fitted the headroom;
  `reserve`/`fair-share` — no eligible job ahead fitted before the first blocked one, which
  must hold the recorded reservation, and none between them would have fitted its spare;
- `reservation`: the admission ends before the reservation by its recorded estimate, or
  uses only the reservation's spare GPUs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from events.domain.scheduling.model import Admission, Job, Limits, Policy, Running
from events.domain.scheduling.order import policy_order


def check_admission(
    admission: Admission,
    queue: Sequence[Job],
    running: Sequence[Running],
    limits: Limits,
    policy: Policy,
    now: datetime,
    *,
    usage: Mapping[str, float] | None = None,
    estimate: Callable[[Job], float] | None = None,
) -> list[str]:
    job = admission.job
    gpus = job.gpu_count
    free = admission.available_before
    broken: list[str] = []
    in_class: dict[tuple[str, str], int] = {}
    for r in running:
        key = (r.user_id, limits.size_class(r.gpu_count))
        in_class[key] = in_class.get(key, 0) + 1

    real = dict(in_class)
    # under reserve/fair-share a job holding a reservation keeps its user's slot
    by_id = {k.job_id: k for k in queue} if admission.holders else {}
    holders = [by_id[h] for h in admission.holders if h in by_id]
    for h in holders:
        key = (h.user_id, limits.size_class(h.gpu_count))
        in_class[key] = in_class.get(key, 0) + 1

    def eligible(k: Job) -> bool:
        size_class = limits.size_class(k.gpu_count)
        cap = limits.cap(k.user_id, size_class)
        held = in_class.get((k.user_id, size_class), 0) - (k in holders)
        return cap is None or held < cap

    if gpus > free:
        broken.append(f"budget: needs {gpus} GPUs, {free} {job.gpu_type} free")
    size_class = limits.size_class(gpus)
    cap = limits.cap(job.user_id, size_class)
    load = real.get((job.user_id, size_class), 0)
    if cap is not None and load >= cap:
        broken.append(f"class-cap: user had {load} {size_class} jobs in PROGRESS (cap {cap})")
    reserve = limits.reserve_for(size_class)
    if reserve and free - gpus < reserve:
        broken.append(f"big-reserve: leaves {free - gpus} free, big jobs must leave {reserve}")
    ordered = policy_order(queue, policy, now, usage or {})
    ahead: list[Job] = []
    for k in ordered:
        if k.job_id == job.job_id:
            break
        if k.gpu_type == job.gpu_type and eligible(k):
            ahead.append(k)
    else:
        broken.append("order: the admitted job was not queued")
        return broken
    name = policy.name
    if name == "strict-fifo":
        for k in ahead:
            k_class = limits.size_class(k.gpu_count)
            if not (k_class == "big" and free - k.gpu_count < limits.reserve_for(k_class)):
                broken.append(f"order: job {k.job_id} ahead was eligible and not admitted")
                break
    elif name == "backfill":
        for k in ahead:
            k_reserve = limits.reserve_for(limits.size_class(k.gpu_count))
            if k.gpu_count + k_reserve <= free:
                broken.append(f"order: job {k.job_id} ahead fitted {free} free GPUs")
                break
    else:
        held = sum(r.gpu_count for r in running if r.gpu_type == job.gpu_type)
        broken += _check_easy(admission, ahead, limits, now, estimate, free + held)
    return broken


def _check_easy(
    admission: Admission,
    ahead: list[Job],
    limits: Limits,
    now: datetime,
    estimate: Callable[[Job], float] | None,
    most: int,
) -> list[str]:
    """`most`: the GPUs of the type free once every running job has ended."""
    free = admission.available_before
    holder: Job | None = None
    for k in ahead:
        need = k.gpu_count + limits.reserve_for(limits.size_class(k.gpu_count))
        if holder is None:
            if need <= free:
                return [f"order: job {k.job_id} ahead fitted {free} free GPUs"]
            if need <= most:  # one that can never fit holds no reservation
                holder = k
        elif estimate is not None and admission.spare_before is not None and need <= free:
            ends = now + timedelta(seconds=estimate(k))
            res = admission.reservation
            if (res is not None and ends <= res.at) or k.gpu_count <= admission.spare_before:
                return [f"order: job {k.job_id} ahead fitted without delaying the reservation"]
    if holder is None:
        return []
    res = admission.reservation
    if res is None:
        return [f"reservation: none recorded though job {holder.job_id} ahead was blocked"]
    broken: list[str] = []
    if res.job_id != holder.job_id:
        broken.append(f"reservation: held by {res.job_id}, but {holder.job_id} was blocked first")
    est = admission.estimate_s
    if est is None or admission.spare_before is None:
        return [*broken, "reservation: no estimate or spare recorded"]
    ends = now + timedelta(seconds=est)
    if ends > res.at and admission.job.gpu_count > admission.spare_before:
        broken.append(
            f"reservation: ends after {res.at.isoformat()} and needs {admission.job.gpu_count}"
            f" GPUs, {admission.spare_before} spare"
        )
    if admission.spare_before > res.spare:
        broken.append(f"reservation: spare {admission.spare_before} above {res.spare}")
    return broken
