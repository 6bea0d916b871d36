"""An in-memory fake of Fireworks' fine-tuning API for tests and local runs."""

from __future__ import annotations

from .app import create_simulator_app
from .faults import Faults
from .runner import RunningSimulator, main_simulator, run_simulator
from .sim import SimConfig, Simulator
from .state import GPU_QUOTA, SimError

__all__ = [
    "GPU_QUOTA",
    "Faults",
    "RunningSimulator",
    "SimConfig",
    "SimError",
    "Simulator",
    "create_simulator_app",
    "main_simulator",
    "run_simulator",
]
