"""New jobs, recorded in groups: the submits that arrive together share one statement, one
commit and one pool checkout (service.batcher), which is most of what a submit costs the
database and a good part of what it costs this process.

A group is all or nothing (projections.recorder.record_new_jobs). If it is refused as a
whole (one job reused an Idempotency-Key, say), each of its jobs is recorded on its own, so
each caller gets the answer its own job deserves. A submit is answered only once its event
is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import msgspec

from events.domain.job import JOB, JobState, decide, initial_state
from events.domain.job_commands import SubmitJob
from events.store.waker import Waker
from projections.recorder import NewJob, new_job, record_new_jobs
from service.batcher import Batcher
from service.commands import run_command
from service.secrets.vault import KeyRow, Vault


class Submitter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        waker: Waker | None,
        *,
        max_batch: int = 256,
        vault: Vault | None = None,
    ) -> None:
        self._pool = pool
        self._waker = waker
        # Seals the payload secrets of every new job; its data key is stored by the statement
        # that records its event (a job recorded on its own: just before it, service.secrets);
        # None: payloads are recorded as given.
        self._vault = vault
        self._batcher: Batcher[tuple[SubmitJob, NewJob, KeyRow | None], JobState] = Batcher(
            self._record, name="ftq-submit", max_size=max_batch
        )

    @property
    def batches(self) -> int:
        return self._batcher.batches

    async def submit(self, command: SubmitJob, metadata: Mapping[str, Any]) -> JobState:
        """Record the job `command` submits (a new stream); its state once committed.
        Raises `CommandRejected` when the rules refuse it, asyncpg's `UniqueViolationError`
        when the caller's Idempotency-Key is taken."""
        command, key = self._sealed(command)
        job = new_job(initial_state(), decide(command, initial_state()), metadata)
        if job is None:  # not a plain new job: recorded on its own
            return await self._one(command, metadata, key)
        return await self._batcher.call((command, job, key))

    async def submit_group(
        self, commands: Sequence[SubmitJob], metadata: Mapping[str, Any]
    ) -> list[JobState]:
        """Record the new jobs of `commands` together, all or none (one statement, one commit:
        a batch submit is its own group). Raises `UniqueViolationError` when one of them
        reuses a taken Idempotency-Key, `CommandRejected` when the rules refuse one."""
        jobs: list[NewJob] = []
        keys: list[KeyRow] = []
        for given in commands:
            command, key = self._sealed(given)
            keys += [key] if key is not None else []
            job = new_job(initial_state(), decide(command, initial_state()), metadata)
            if job is None:
                raise RuntimeError(f"job {command.job_id} is not a plain new job")
            jobs.append(job)
        if jobs:
            async with self._pool.acquire() as conn:
                await record_new_jobs(conn, jobs, self._waker, keys)
        return [job.after for job in jobs]

    async def close(self) -> None:
        """Wait for every submit under way to be answered."""
        await self._batcher.close()

    def _sealed(self, command: SubmitJob) -> tuple[SubmitJob, KeyRow | None]:
        if self._vault is None:
            return command, None
        payload, key = self._vault.prepare(command.job_id, command.fireworks_payload)
        if key is None:
            return command, None
        return msgspec.structs.replace(command, fireworks_payload=payload), key

    async def _store(self, key: KeyRow | None) -> None:
        if self._vault is not None and key is not None:
            await self._vault.store(self._pool, [key])

    async def _record(
        self, items: Sequence[tuple[SubmitJob, NewJob, KeyRow | None]]
    ) -> Sequence[JobState | BaseException]:
        try:
            keys = [key for _, _, key in items if key is not None]
            async with self._pool.acquire() as conn:  # the keys in the events' statement
                await record_new_jobs(conn, [job for _, job, _ in items], self._waker, keys)
        except Exception:  # the group was refused: each job on its own, each its own answer
            return await asyncio.gather(
                *(self._one(command, job.metadata, key) for command, job, key in items),
                return_exceptions=True,
            )
        return [job.after for _, job, _ in items]

    async def _one(
        self, command: SubmitJob, metadata: Mapping[str, Any], key: KeyRow | None = None
    ) -> JobState:
        await self._store(key)  # the data key before the event (again is harmless)
        state, _ = await run_command(
            self._pool, JOB, command.job_id, command, metadata, waker=self._waker, new_stream=True
        )
        return state
