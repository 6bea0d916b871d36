"""Group-committed submits (service.submissions) and key lookups (service.directory.KeyLookup)
on a real PostgreSQL: a group records exactly what one-by-one submits would, all or nothing;
a refused group falls back so each caller gets its own answer; a revoked key is refused by
the very next lookup."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.domain.job import JOB, JobState, decide, initial_state
from events.domain.job_events import JobEvent
from events.store.log import Cursor, read_all
from projections.rebuild import verify
from projections.recorder import load, new_job, record_new_jobs
from service.directory import KeyLookup, add_user, issue_key, revoke_key
from service.submissions import Submitter
from tests.integration.test_projections import META, submit


async def test_submits_that_arrive_together_are_one_statement_and_match_a_replay(
    pool: asyncpg.Pool,
) -> None:
    submitter = Submitter(pool, None)
    user = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(40)]
    states = await asyncio.gather(*(submitter.submit(submit(i, user), META) for i in ids))
    assert [s.job_id for s in states] == ids
    assert all(s.status == "QUEUED" and s.version == 1 for s in states)
    assert submitter.batches < len(ids) / 4, submitter.batches  # grouped, not one by one
    async with pool.acquire() as conn:
        assert await verify(conn) == []
        events = await read_all(conn, Cursor.START, 1000)
        for job_id, state in zip(ids, states, strict=True):
            assert await load(conn, JOB, job_id) == state
    assert sorted(e.stream_id for e in events) == sorted(ids)
    positions = [e.position for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(ids)
    rows = await pool.fetch("SELECT id::text, state, last_position FROM jobs")
    by_stream = {e.stream_id: e.position for e in events}
    assert {r[0]: r[2] for r in rows} == by_stream and {r[1] for r in rows} == {"QUEUED"}


async def test_a_group_with_a_reused_idempotency_key_records_the_others(
    pool: asyncpg.Pool,
) -> None:
    submitter = Submitter(pool, None)
    user = str(uuid.uuid4())
    first = str(uuid.uuid4())
    await submitter.submit(submit(first, user, key="k1"), META)
    ok = [str(uuid.uuid4()) for _ in range(5)]
    dup = str(uuid.uuid4())
    results = await asyncio.gather(
        *(submitter.submit(submit(i, user), META) for i in ok[:2]),
        submitter.submit(submit(dup, user, key="k1"), META),
        *(submitter.submit(submit(i, user), META) for i in ok[2:]),
        return_exceptions=True,
    )
    assert isinstance(results[2], asyncpg.UniqueViolationError)
    assert [r.job_id for r in results if not isinstance(r, BaseException)] == ok
    assert await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", dup) == 0
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 1 + len(ok)
    async with pool.acquire() as conn:
        assert await verify(conn) == []


async def test_two_submits_with_one_key_in_one_group_record_one_job(pool: asyncpg.Pool) -> None:
    submitter = Submitter(pool, None)
    user = str(uuid.uuid4())
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    results = await asyncio.gather(
        submitter.submit(submit(a, user, key="same"), META),
        submitter.submit(submit(b, user, key="same"), META),
        return_exceptions=True,
    )
    assert sum(isinstance(r, asyncpg.UniqueViolationError) for r in results) == 1
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE idempotency_key = 'same'") == 1
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def test_a_group_is_all_or_nothing(pool: asyncpg.Pool) -> None:
    user = str(uuid.uuid4())
    taken = str(uuid.uuid4())
    await Submitter(pool, None).submit(submit(taken, user), META)
    fresh = str(uuid.uuid4())
    jobs = []
    for job_id in (fresh, taken):  # the second stream exists already
        job = new_job(*_decided(job_id, user))
        assert job is not None
        jobs.append(job)
    keys = [(fresh, "kid", b"wrapped-fresh"), (taken, "kid", b"wrapped-taken")]
    async with pool.acquire() as conn:
        with pytest.raises(Exception, match="2 new jobs"):
            await record_new_jobs(conn, jobs, data_keys=keys)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", fresh) == 0
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE id = $1", fresh) == 0
    assert await pool.fetchval("SELECT count(*) FROM job_data_keys") == 0  # nor its keys


async def test_a_group_stores_its_data_keys_in_the_same_statement(pool: asyncpg.Pool) -> None:
    user = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(3)]
    jobs = [new_job(*_decided(job_id, user)) for job_id in ids]
    keys = [(ids[0], "kid-a", b"one"), (ids[2], "kid-b", b"three")]  # the middle has no secret
    async with pool.acquire() as conn:
        await record_new_jobs(conn, [job for job in jobs if job is not None], data_keys=keys)
    rows = await pool.fetch("SELECT job_id::text, kid, wrapped FROM job_data_keys")
    assert sorted((r[0], r[1], bytes(r[2])) for r in rows) == sorted(keys)
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 3


def _decided(job_id: str, user: str) -> tuple[JobState, list[JobEvent], dict[str, str]]:
    return initial_state(), decide(submit(job_id, user), initial_state()), META


async def test_a_revoked_key_is_refused_by_the_next_lookup(pool: asyncpg.Pool) -> None:
    await add_user(pool, "ada@example.com", "member", META)
    await add_user(pool, "bob@example.com", "admin", META)
    ada = await issue_key(pool, "ada@example.com", None, META)
    bob = await issue_key(pool, "bob@example.com", None, META)
    keys = KeyLookup(pool)
    found = await asyncio.gather(
        keys.authenticate(ada.key),
        keys.authenticate(bob.key),
        keys.authenticate(ada.key),
        keys.authenticate("sftq_" + "A" * 43),  # well formed, unknown
        keys.authenticate("not a key"),
    )
    assert [u.email if u else None for u in found] == [
        "ada@example.com",
        "bob@example.com",
        "ada@example.com",
        None,
        None,
    ]
    assert found[1] is not None and found[1].role == "admin"
    await revoke_key(pool, ada.id, META)
    assert await keys.authenticate(ada.key) is None
    assert await keys.authenticate(bob.key) is not None
    await keys.close()


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    waves=st.lists(
        st.lists(
            st.tuples(st.integers(0, 2), st.sampled_from([None, None, "a", "b", "c"])),
            min_size=1,
            max_size=12,
        ),
        min_size=1,
        max_size=6,
    )
)
async def test_random_waves_of_concurrent_submits_keep_the_invariants(
    pool: asyncpg.Pool, waves: list[list[tuple[int, str | None]]]
) -> None:
    """Each wave's submits run concurrently through one Submitter, so they share groups, and
    some reuse Idempotency-Keys (within the wave and across waves). After every wave: one
    job per (user, key); every answered submit is committed, row and event; every refused
    one left nothing; the projections equal a replay of the log."""
    submitter = Submitter(pool, None, max_batch=4)  # small groups: more group boundaries
    users = [str(uuid.uuid4()) for _ in range(3)]
    recorded: dict[str, tuple[str, str | None]] = {}  # job id -> (user, key)
    for wave in waves:
        ids = [str(uuid.uuid4()) for _ in wave]
        results = await asyncio.gather(
            *(
                submitter.submit(submit(job_id, users[user], key=key), META)
                for job_id, (user, key) in zip(ids, wave, strict=True)
            ),
            return_exceptions=True,
        )
        answers = list(zip(ids, wave, results, strict=True))
        for job_id, (user, key), result in answers:  # the answered submits first
            if not isinstance(result, BaseException):
                assert result.job_id == job_id and result.status == "QUEUED"
                assert key is None or (users[user], key) not in recorded.values()
                recorded[job_id] = (users[user], key)
        for job_id, (user, key), result in answers:  # then the refused ones
            if isinstance(result, BaseException):
                assert isinstance(result, asyncpg.UniqueViolationError), result
                assert key is not None and (users[user], key) in recorded.values()
                left = await pool.fetchval(
                    "SELECT count(*) FROM events WHERE stream_id = $1", job_id
                )
                assert left == 0
        # (the database outlives one example: look only at this example's users and jobs)
        rows = await pool.fetch(
            "SELECT id::text, user_id::text, idempotency_key FROM jobs"
            " WHERE user_id = ANY($1::uuid[])",
            users,
        )
        assert {r[0]: (r[1], r[2]) for r in rows} == recorded
        streams = await pool.fetch(
            "SELECT stream_id FROM events WHERE data->>'user_id' = ANY($1::text[])", users
        )
        assert sorted(r[0] for r in streams) == sorted(recorded)
        async with pool.acquire() as conn:
            assert await verify(conn) == []
