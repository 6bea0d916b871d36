"""Simulated time: the live planner driven over a workload trace, its metrics and ETAs."""

from events.domain.simulation.engine import JobRun, Outcome, Sample, simulate
from events.domain.simulation.eta import EtaAccuracy, EtaRecord, accuracy, forward_starts
from events.domain.simulation.eta_run import measure_etas
from events.domain.simulation.metrics import Metrics, metrics
from events.domain.simulation.planner import SimPlanner
from events.domain.simulation.trace import TraceError, TraceJob, parse_trace

__all__ = [
    "EtaAccuracy", "EtaRecord", "JobRun", "Metrics", "Outcome", "Sample", "SimPlanner",
    "TraceError", "TraceJob", "accuracy", "forward_starts", "measure_etas", "metrics",
    "parse_trace", "simulate",
]  # fmt: skip
