"""Pending reasons in plain words."""

from __future__ import annotations

from datetime import datetime
from typing import Final

PAUSED_REASON: Final = "admission paused"
ADMIT_REASON: Final = "next to be admitted"


def cap_reason(cap: int, in_progress: int, size_class: str, classes_on: bool) -> str:
    noun = f"{size_class} job" if classes_on else "job"
    if cap == 0:
        what = f"{size_class}-job cap" if classes_on else "cap"
        return f"your {what} is 0: admissions are off for you"
    if in_progress >= cap:
        if cap == 1 and not classes_on:
            return "you already have a job in PROGRESS"
        plural = "" if in_progress == 1 else "s"
        return f"you already have {in_progress} {noun}{plural} in PROGRESS (cap {cap})"
    return f"your earlier queued {noun} goes first (cap {cap})"


def no_fit(gpus: int, free: int) -> str:
    return f"needs {gpus} GPUs, {free} free"


def big_reserve(gpus: int, free: int, reserve: int) -> str:
    if reserve == 0:
        return no_fit(gpus, free)
    if gpus <= free:
        left = free - gpus
        return f"needs {gpus} GPUs and would leave {left} free; big jobs must leave {reserve}"
    return f"needs {gpus} GPUs, {free} free; big jobs must leave {reserve}"


def behind(job_id: str) -> str:
    return f"behind job {job_id}"


def clock(at: datetime) -> str:
    return at.strftime("%H:%M")


def reserved(base: str, at: datetime) -> str:
    return f"{base}; GPUs reserved for it at {clock(at)}"


def never_fits(gpus: int, gpu_type: str) -> str:
    return f"needs {gpus} GPUs: more than the {gpu_type} quota can ever free"


def waiting_reservation(at: datetime, job_id: str) -> str:
    return f"waiting for a reservation at {clock(at)} for job {job_id}"


def less_usage(base: str, ahead: int) -> str:
    if ahead <= 0:
        return base
    plural = "" if ahead == 1 else "s"
    return f"{base}; behind {ahead} job{plural} of users with less recent usage"
