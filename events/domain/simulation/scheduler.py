"""The domain planner (`events.domain.scheduling`) behind the simulator's `SimPlanner`
shape: the same `SchedulerState` and planning pass the admission loop runs, fed from
simulated time (seconds since the epoch, turned into UTC datetimes here).

Estimates come from the state's `RuntimeEstimator`, which sees only the runtimes of jobs
finished so far in the simulation, never a job's own `duration_s`."""

from __future__ import annotations

import copy
import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import msgspec

from events.domain.scheduling import (
    DEFAULT_PRIORITY,
    DEFAULT_RUNTIME_MINUTES,
    Job,
    Limits,
    Pass,
    Policy,
    Running,
    SchedulerState,
    policy_order,
)
from events.domain.simulation.trace import TraceJob

SINGLE_POOL = "*"
REBASE_HALF_LIVES = 64  # the fair-share ledger's reference time moves this far behind
FLOOR_S = 60.0  # a running job is never expected to end sooner than this from now


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """Simulated seconds since the epoch as a time (arithmetic, not a clock read)."""
    return EPOCH + timedelta(seconds=seconds)


class DomainPlanner:
    """`quota` is `{"*": N}` (one pool: every job counts against it) or GPUs per type.

    A pass is the domain's `Pass` over the queue in `policy_order`, as `SchedulerState.plan`
    runs it, with what it reads of the running jobs kept up to date one event at a time
    instead of rebuilt from all of them at every moment (a 100k-job trace at a scaled quota
    has thousands running): the headroom per pool; only the running jobs of users with a
    queued job (the only users' slots a pass reads); the expected ends per type (`reserve`,
    `fair-share`); the overdue ones from a heap. `tests/unit/test_simulation.py` checks the
    passes equal `SchedulerState.plan`'s."""

    def __init__(
        self,
        limits: Limits,
        policy: Policy,
        quota: Mapping[str, int],
        *,
        epoch: float,
        default_runtime_minutes: float = DEFAULT_RUNTIME_MINUTES,
    ) -> None:
        self.single = SINGLE_POOL in quota
        self.state = SchedulerState(
            limits, policy, quota, at(epoch), default_runtime_minutes=default_runtime_minutes
        )
        self.now = at(epoch)
        self.easy = policy.reserves
        self.free: dict[str, int] = dict(quota)
        self.queued_users: dict[str, int] = {}  # user -> queued jobs
        self.streams: dict[tuple[str, str], dict[str, Job]] = {}  # (user, class) -> FIFO
        self.progress: dict[tuple[str, str], int] = {}  # (user, class) -> running jobs
        self.caps: dict[tuple[str, str], int | None] = {}  # of each stream
        self.open: set[tuple[str, str]] = set()  # streams under their cap by running jobs
        self.user_runs: dict[str, dict[str, Running]] = {}  # user -> running job id -> run
        self.ends: dict[str, dict[str, tuple[datetime, int]]] = {}  # type -> id -> end, gpus
        self.due: list[tuple[datetime, str]] = []  # (expected end, id): a heap, lazy deletes
        self.learn = True  # finished runtimes feed the estimator (not in a live forecast)
        self.fifo = True  # the queue (insertion order) is in FIFO order, all one priority
        self.last: tuple[datetime, str] | None = None

    def _job(self, job: TraceJob) -> Job:
        gpu_type = SINGLE_POOL if self.single else job.gpu_type
        return Job(job.job_id, job.user, at(job.submitted_at), job.gpu_count, gpu_type, job.kind,
                   job.priority, job.max_runtime_minutes)  # fmt: skip

    def arrive(self, job: TraceJob, now: float) -> None:
        one = self._job(job)
        self.state.arrive(one)
        fifo_key = (one.created_at, one.job_id)
        if (self.last is not None and fifo_key < self.last) or one.priority != DEFAULT_PRIORITY:
            self.fifo = False
        self.last = fifo_key
        self.queued_users[job.user] = self.queued_users.get(job.user, 0) + 1
        key = self._key(one)
        self.streams.setdefault(key, {})[one.job_id] = one
        if key not in self.caps:
            self.caps[key] = self.state.limits.cap(*key)
        self._reopen(key)

    def _reopen(self, key: tuple[str, str]) -> None:
        cap = self.caps.get(key)
        if key in self.streams and (cap is None or self.progress.get(key, 0) < cap):
            self.open.add(key)
        else:
            self.open.discard(key)

    def _key(self, job: Job | Running) -> tuple[str, str]:
        return (job.user_id, self.state.limits.size_class(job.gpu_count))

    def start_running(self, job: TraceJob, started_at: float) -> None:
        """`job` has been running since `started_at` (a forecast's initial state)."""
        state = self.state
        one = self._job(job)
        state.arrive(one)
        run = state.admit(one.job_id, at(started_at))  # expected end: start + estimate
        self.free[one.gpu_type] = self.free.get(one.gpu_type, 0) - one.gpu_count
        self._track(run)

    def _track(self, run: Running, *, new: bool = True) -> None:
        self.user_runs.setdefault(run.user_id, {})[run.job_id] = run
        if new:
            key = self._key(run)
            self.progress[key] = self.progress.get(key, 0) + 1
            self._reopen(key)
        if self.easy:
            self.ends.setdefault(run.gpu_type, {})[run.job_id] = (run.expected_end, run.gpu_count)
            heapq.heappush(self.due, (run.expected_end, run.job_id))

    def refresh(self, moment: datetime) -> None:
        """Running jobs past their expected end get a new one as known now: `now` plus
        the estimator's remaining time for a job that has run that long (≥ `FLOOR_S`)."""
        state, due = self.state, self.due
        while due and due[0][0] <= moment:
            end, job_id = heapq.heappop(due)
            entry = state.running.get(job_id)
            if entry is None or entry[1].expected_end != end:
                continue  # finished, or already given a later end
            job, run = entry
            elapsed = (moment - run.started_at).total_seconds()
            left = state.estimator.remaining(job, elapsed, FLOOR_S)
            run = msgspec.structs.replace(run, expected_end=moment + timedelta(seconds=left))
            state.running[job_id] = (job, run)
            self._track(run, new=False)

    def remaining(self, job_id: str, now: float) -> float:
        """A running job's expected further runtime at `now` (≥ `FLOOR_S`)."""
        job, run = self.state.running[job_id]
        elapsed = now - run.started_at.timestamp()
        return self.state.estimator.remaining(job, elapsed, FLOOR_S)

    def plan(self, now: float) -> Sequence[str]:
        self.now = moment = at(now)
        state = self.state
        if self.easy:
            self.refresh(moment)
        if not state.queue:
            return []
        usage = None
        if state.policy.name == "fair-share":  # the users with a queued job are the ones read
            runs = [r for u in self.queued_users for r in self.user_runs.get(u, {}).values()]
            usage = state.usage.at(moment, runs)
        pass_ = Pass((), self.free, state.limits, state.policy, moment,
                     estimate=state.estimator.estimate, usage=usage)  # fmt: skip
        # What `Pass` would count from every running job, kept up to date instead: the
        # (user, class) slots they hold and (reserve, fair-share) when their GPUs free up,
        # each end past `moment` after `refresh`.
        pass_.progress = self.progress
        pass_.slots = dict(self.progress)
        if self.easy:
            pass_.ends = {t: list(ends.values()) for t, ends in self.ends.items()}
        order: Sequence[Job]
        if self.fifo and state.policy.name != "fair-share":
            # the pass only iterates its order (and stops early): no list of a long queue
            order = cast(Sequence[Job], self._fifo_order(pass_.slots))
        else:
            order = policy_order(list(state.queue.values()), state.policy, moment, usage or {})
        done = pass_.plan(order, explain=False)
        for admission in done.admit:
            job = admission.job
            run = state.admit(job.job_id, moment)
            self.free[job.gpu_type] = self.free.get(job.gpu_type, 0) - job.gpu_count
            key = self._key(job)
            stream = self.streams[key]
            del stream[job.job_id]
            if not stream:
                del self.streams[key]
                del self.caps[key]
            left = self.queued_users[job.user_id] - 1
            if left:
                self.queued_users[job.user_id] = left
            else:
                del self.queued_users[job.user_id]
            self._track(run)
        return [a.job.job_id for a in done.admit]

    def _fifo_order(self, slots: Mapping[tuple[str, str], int]) -> Iterator[Job]:
        """The queue in FIFO order (`policy_order` of a FIFO queue of one priority) less
        jobs the pass would only skip for their user's class cap (no slot, no block, no
        reservation: its admissions are the same): read lazily while the pass steps, with
        `slots` the pass's live slot counts. With few (user, class) streams for the queue's
        length, a stream is merged in only while its user has a free slot; else the queue
        is read whole, capped jobs left out."""
        queue, caps = self.state.queue, self.caps

        def full(key: tuple[str, str]) -> bool:
            cap = caps[key]
            return cap is not None and slots.get(key, 0) >= cap

        if len(self.streams) * 4 >= len(queue):
            key_of = self._key
            return (j for j in queue.values() if not full(key_of(j)))
        return self._merged(full)

    def _merged(self, full: Callable[[tuple[str, str]], bool]) -> Iterator[Job]:
        heap: list[tuple[datetime, str, Job, Iterator[Job], tuple[str, str]]] = []
        for key in self.open:
            if not full(key):
                it = iter(self.streams[key].values())
                first = next(it)
                heap.append((first.created_at, first.job_id, first, it, key))
        heapq.heapify(heap)
        while heap:
            _, _, job, it, key = heap[0]
            yield job  # the pass steps it; `full` then sees the slot it took
            following = next(it, None)
            if following is None or full(key):
                heapq.heappop(heap)
            else:
                entry = (following.created_at, following.job_id, following, it, key)
                heapq.heapreplace(heap, entry)

    def finish(self, job_id: str, now: float, runtime: float) -> None:
        moment = at(now)
        state = self.state
        usage = state.usage
        if (moment - usage.epoch).total_seconds() > REBASE_HALF_LIVES * usage.half_life_s:
            usage.rebase(moment)
        _, run = state.running[job_id]
        state.finish(job_id, moment, observed=self.learn)
        self.free[run.gpu_type] += run.gpu_count
        key = self._key(run)
        self.progress[key] -= 1
        self._reopen(key)
        runs = self.user_runs[run.user_id]
        del runs[job_id]
        if not runs:
            del self.user_runs[run.user_id]
        if self.easy:
            del self.ends[run.gpu_type][job_id]

    def estimate(self, job_id: str) -> float:
        state = self.state
        job = state.queue.get(job_id)
        if job is None:
            job = state.running[job_id][0]
        return state.estimator.estimate(job)

    def position(self, job_id: str) -> int:
        state = self.state
        usage: Mapping[str, float] = {}
        if state.policy.name == "fair-share":
            usage = state.usage.at(self.now, [run for _, run in state.running.values()])
        order = policy_order(list(state.queue.values()), state.policy, self.now, usage)
        return 1 + next(i for i, j in enumerate(order) if j.job_id == job_id)

    def copy(self) -> DomainPlanner:
        return copy.deepcopy(self)
