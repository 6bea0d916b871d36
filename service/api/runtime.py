"""Everything the handlers need at run time, built once by the app's lifespan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
from litestar.datastructures import State

from events.store.tail import LogWatcher
from events.store.waker import Waker
from service.api.batching import SharedRun
from service.capacity import CapacityReader
from service.clock import Clock, utcnow
from service.directory import KeyLookup
from service.fireworks import FireworksClient
from service.secrets.vault import Vault
from service.settings import Settings
from service.submissions import Submitter

if TYPE_CHECKING:
    from service.admission.loop import AdmissionLoop
    from service.fireworks.simulator import RunningSimulator


class Runtime:
    """A plain class, not a dataclass: Litestar's signature model passes it through as is."""

    def __init__(
        self,
        *,
        settings: Settings,
        database_url: str,
        pool: asyncpg.Pool,
        waker: Waker,
        submitter: Submitter,
        keys: KeyLookup,
        watcher: LogWatcher,
        session: aiohttp.ClientSession,
        client: FireworksClient,
        capacity: CapacityReader,
        vault: Vault,
        simulator: RunningSimulator | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.pool = pool
        self.waker = waker  # every API write wakes the log's tailers through it
        self.submitter = submitter  # POST /jobs records through it, in groups
        self.keys = keys  # bearer keys are looked up through it, in groups
        self.watcher = watcher
        self.session = session
        self.client = client
        self.capacity = capacity
        self.simulator = simulator
        self.vault = vault  # seals payload secrets at submit (service.secrets)
        self.clock = clock  # the one clock: every `at` and "now" of a request
        self.loop: AdmissionLoop | None = None  # when the scheduler runs in this process
        self.plans: SharedRun[Any] | None = None  # api.views.PlanSnapshot, shared runs
        self.plan_snapshot: Any = None  # api.views.PlanSnapshot: the latest plan made
        self.eta: Any = None  # service.eta.EtaForecaster: queued jobs' ETAs, in the background
        self.history: Any = None  # admission.history.SchedulingHistory without a loop here


def runtime_of(state: State) -> Runtime:
    runtime = state.get("runtime")
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the app is not started (no runtime on app.state)")
    return runtime
