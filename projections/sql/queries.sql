-- Named queries of the projections, loaded once at import (projections.sql.QUERIES).

-- name: upsert_job
INSERT INTO jobs (id, user_id, user_email, kind, state, display_name, gpu_count,
                  fireworks_payload, created_at, started_at, completed_at, error,
                  fireworks_job_id, fireworks_job_name, fireworks_state, progress,
                  admission_open, cancel_requested_by, idempotency_key, request_fingerprint,
                  version, last_position)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9, $10, $11, $12, $13, $14, $15, $16,
        $17, $18, $19, $20, $21, $22)
ON CONFLICT (id) DO UPDATE SET
    state = excluded.state,
    started_at = excluded.started_at,
    completed_at = excluded.completed_at,
    error = excluded.error,
    fireworks_job_id = excluded.fireworks_job_id,
    fireworks_job_name = excluded.fireworks_job_name,
    fireworks_state = excluded.fireworks_state,
    progress = excluded.progress,
    admission_open = excluded.admission_open,
    cancel_requested_by = excluded.cancel_requested_by,
    version = excluded.version,
    last_position = excluded.last_position;

-- name: record_new_jobs
-- New jobs' first events and their `jobs` rows in one statement: one round trip for a whole
-- group of submits (the hottest write path; projections.recorder.record_new_jobs).
-- $1, the admission gate's key (events.store.locks.ADMISSION_GATE), is taken shared first
-- (query `admission_gate_shared` says why), before the append gives the transaction an id
-- and positions: every event row is drawn `FROM gate, unnest(...)`, so none is written
-- before the lock is held, and a new job is one the next admission decision sees or comes
-- after. $2..$6 are the events (events.store.log.new_streams_args: stream ids = job ids,
-- types, schema versions, data, metadata), $7..$26 the `jobs` columns after `id`
-- (projections.writers.job_columns), all arrays with one element per job. $27..$29 are the
-- payload secrets' data keys of those jobs that have any (service.secrets: job ids, master
-- key ids, wrapped keys; empty arrays when none): stored by the same statement, so a job's
-- event never commits without its key, nor its key without the job, and a group costs one
-- commit. If any stream exists the whole statement raises a unique violation and records
-- nothing.
WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($1)),
appended AS (
    INSERT INTO events (stream_id, stream_version, type, schema_version, data, metadata)
    SELECT new.stream_id, 1, new.type, new.schema_version, new.data::jsonb, new.metadata::jsonb
    FROM gate, unnest($2::text[], $3::text[], $4::smallint[], $5::text[], $6::text[])
            WITH ORDINALITY AS new (stream_id, type, schema_version, data, metadata, n)
    ORDER BY new.n
    RETURNING stream_id, position, transaction_id, recorded_at
),
job AS (
    INSERT INTO jobs (id, user_id, user_email, kind, state, display_name, gpu_count,
                      fireworks_payload, created_at, started_at, completed_at, error,
                      fireworks_job_id, fireworks_job_name, fireworks_state, progress,
                      admission_open, cancel_requested_by, idempotency_key,
                      request_fingerprint, version, last_position)
    SELECT new.id::uuid, new.user_id::uuid, new.user_email, new.kind, new.state,
           new.display_name, new.gpu_count, new.fireworks_payload::jsonb, new.created_at,
           new.started_at, new.completed_at, new.error, new.fireworks_job_id,
           new.fireworks_job_name, new.fireworks_state, new.progress, new.admission_open,
           new.cancel_requested_by, new.idempotency_key, new.request_fingerprint, new.version,
           appended.position
    FROM unnest($2::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                $12::int[], $13::text[], $14::timestamptz[], $15::timestamptz[],
                $16::timestamptz[], $17::text[], $18::text[], $19::text[], $20::text[],
                $21::float8[], $22::bool[], $23::text[], $24::text[], $25::text[], $26::int[])
            AS new (id, user_id, user_email, kind, state, display_name, gpu_count,
                    fireworks_payload, created_at, started_at, completed_at, error,
                    fireworks_job_id, fireworks_job_name, fireworks_state, progress,
                    admission_open, cancel_requested_by, idempotency_key, request_fingerprint,
                    version)
    JOIN appended ON appended.stream_id = new.id COLLATE "C"
),
data_key AS (
    INSERT INTO job_data_keys (job_id, kid, wrapped)
    SELECT key.job_id, key.kid, key.wrapped
    FROM gate, unnest($27::uuid[], $28::text[], $29::bytea[]) AS key (job_id, kid, wrapped)
    ON CONFLICT (job_id) DO NOTHING
)
SELECT stream_id, position, transaction_id, recorded_at FROM appended;

-- name: add_user_load
-- The CHECKs apply to the proposed row before ON CONFLICT, so it carries no negative values;
-- the signed change is applied in DO UPDATE.
INSERT INTO user_load AS l (user_id, progress_count, progress_gpus)
VALUES ($1, greatest($2::int, 0), greatest($3::int, 0))
ON CONFLICT (user_id) DO UPDATE SET
    progress_count = l.progress_count + $2::int,
    progress_gpus = l.progress_gpus + $3::int;

-- name: insert_user
INSERT INTO users (id, email, role, cap, created_at) VALUES ($1, $2, $3, NULL, $4);

-- name: set_user_cap
-- $2 the small-class cap (NULL: default), $3 whether it is unlimited.
UPDATE users SET cap = $2,
    cap_unlimited = CASE WHEN $3::bool THEN array(SELECT DISTINCT unnest(cap_unlimited || '{small}'))
                         ELSE array_remove(cap_unlimited, 'small') END
WHERE id = $1;

-- name: set_user_cap_big
UPDATE users SET cap_big = $2,
    cap_unlimited = CASE WHEN $3::bool THEN array(SELECT DISTINCT unnest(cap_unlimited || '{big}'))
                         ELSE array_remove(cap_unlimited, 'big') END
WHERE id = $1;

-- name: set_user_share
UPDATE users SET share = $2 WHERE id = $1;

-- name: set_user_max_priority
UPDATE users SET max_priority = $2 WHERE id = $1;

-- name: set_policy_in_force
UPDATE scheduler_state SET policy = $1, policy_settings = $2::text::jsonb;

-- name: insert_job_scheduling
INSERT INTO job_scheduling (job_id, gpu_type, priority) VALUES ($1, $2, $3)
ON CONFLICT (job_id) DO NOTHING;

-- name: insert_key
INSERT INTO api_keys (id, user_id, key_hash, label, created_at) VALUES ($1, $2, $3, $4, $5);

-- name: revoke_key
UPDATE api_keys SET revoked_at = $2 WHERE id = $1;

-- name: set_scheduler
UPDATE scheduler_state SET paused = $1, changed_by = $2, changed_at = $3, reason = $4;

-- name: rebuild_tables
-- Temporary twins of the projection tables; unqualified names resolve to pg_temp first, so
-- the ordinary writers fill them. Dropped at the end of the transaction.
CREATE TEMP TABLE jobs (LIKE public.jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS) ON COMMIT DROP;
CREATE TEMP TABLE user_load (LIKE public.user_load INCLUDING DEFAULTS) ON COMMIT DROP;
CREATE TEMP TABLE users (LIKE public.users INCLUDING DEFAULTS) ON COMMIT DROP;
CREATE TEMP TABLE api_keys (LIKE public.api_keys INCLUDING DEFAULTS) ON COMMIT DROP;
CREATE TEMP TABLE scheduler_state (LIKE public.scheduler_state INCLUDING DEFAULTS) ON COMMIT DROP;
CREATE TEMP TABLE job_usage (LIKE public.job_usage INCLUDING DEFAULTS) ON COMMIT DROP;
CREATE TEMP TABLE job_scheduling (LIKE public.job_scheduling INCLUDING DEFAULTS) ON COMMIT DROP;
CREATE TEMP TABLE job_operations (LIKE public.job_operations INCLUDING DEFAULTS) ON COMMIT DROP;
INSERT INTO pg_temp.scheduler_state (singleton, paused) VALUES (true, false);

-- name: log_in_order
-- The whole log as this transaction's snapshot sees it (no xmin cut: the live tables
-- include every committed transaction, so the rebuild must too).
SELECT position, transaction_id, stream_id, stream_version, type, schema_version,
       data::text, metadata::text, recorded_at
FROM events
WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
ORDER BY transaction_id, position
LIMIT $3;

-- name: lock_projections
LOCK TABLE public.jobs, public.user_load, public.users, public.api_keys,
           public.scheduler_state, public.job_usage, public.job_operations,
           public.job_scheduling IN EXCLUSIVE MODE;

-- name: replace_live
TRUNCATE public.jobs, public.user_load, public.api_keys, public.users, public.scheduler_state,
         public.job_usage, public.job_operations, public.job_scheduling;
INSERT INTO public.users SELECT * FROM pg_temp.users;
INSERT INTO public.api_keys SELECT * FROM pg_temp.api_keys;
INSERT INTO public.jobs SELECT * FROM pg_temp.jobs;
INSERT INTO public.user_load SELECT * FROM pg_temp.user_load;
INSERT INTO public.scheduler_state SELECT * FROM pg_temp.scheduler_state;
INSERT INTO public.job_usage SELECT * FROM pg_temp.job_usage;
INSERT INTO public.job_scheduling SELECT * FROM pg_temp.job_scheduling;
INSERT INTO public.job_operations SELECT * FROM pg_temp.job_operations;

-- name: admission_gate_shared
-- Taken first (before any write, so before the transaction has an id) by a transaction that
-- records new jobs, frees a user's PROGRESS slot or sets a cap. The admission loop takes the
-- same lock exclusively around each admission decision (service.admission.loop): a decision
-- never overlaps such a change, and the log orders the two as they happened (so `ftq audit`
-- judges each decision on exactly the queue it saw).
SELECT pg_advisory_xact_lock_shared($1);

-- name: admission_gate
SELECT pg_advisory_xact_lock($1);

-- name: upsert_job_usage
INSERT INTO job_usage (job_id, user_id, user_email, kind, gpu_count, admitted_at,
                       completed_at, accelerator_seconds, estimated_cost)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (job_id) DO UPDATE SET
    admitted_at = excluded.admitted_at,
    completed_at = excluded.completed_at,
    accelerator_seconds = excluded.accelerator_seconds,
    estimated_cost = excluded.estimated_cost;

-- name: delete_job_usage
DELETE FROM job_usage WHERE job_id = $1;

-- name: usage_in_window
-- Accounting rows of the jobs that ran at some point of [$1, $2) (a running job up to $3);
-- $4: only this user's (NULL: everyone's).
SELECT job_id::text, user_id::text, user_email, kind, gpu_count, admitted_at, completed_at,
       accelerator_seconds, estimated_cost
FROM job_usage
WHERE admitted_at < $2
  AND coalesce(completed_at, greatest($3::timestamptz, admitted_at)) >= $1
  AND ($4::uuid IS NULL OR user_id = $4::uuid)
ORDER BY admitted_at, job_id;

-- name: usage_by_group
-- `GET /usage` grouped by user email ($5 = 'user') or kind, in SQL: the definition of
-- events.domain.usage.summarize (a job's interval [admitted, completed or now) clipped to
-- [$1, $2); Fireworks' figures shared out in the same proportion; a job that ended the instant
-- it was admitted meets the window holding that instant), kept equal to it by
-- tests/integration/test_usage_projection.py. $3 now, $4 only this user's (NULL: everyone's).
WITH spans AS (
    SELECT CASE WHEN $5::text = 'user' THEN user_email ELSE kind END AS grp, gpu_count,
           admitted_at AS b, greatest(coalesce(completed_at, $3::timestamptz), admitted_at) AS e,
           accelerator_seconds, estimated_cost
    FROM job_usage
    WHERE admitted_at < $2
      AND coalesce(completed_at, greatest($3::timestamptz, admitted_at)) >= $1
      AND ($4::uuid IS NULL OR user_id = $4::uuid)
), inside AS (
    SELECT grp, gpu_count, accelerator_seconds, estimated_cost,
           CASE WHEN b = e THEN 0.0
                ELSE extract(epoch FROM least(e, $2) - greatest(b, $1))::float8 END AS seconds,
           extract(epoch FROM e - b)::float8 AS whole
    FROM spans
    WHERE (b = e AND $1 <= b AND b < $2) OR (b < e AND greatest(b, $1) < least(e, $2))
)
SELECT grp, count(*)::int, sum(gpu_count * seconds)::float8,
       sum(accelerator_seconds * CASE WHEN whole <= 0 THEN 1.0 ELSE seconds / whole END)::float8,
       sum(estimated_cost * CASE WHEN whole <= 0 THEN 1.0 ELSE seconds / whole END)::float8
FROM inside GROUP BY grp;
-- name: upsert_job_operations
-- A job's operations record (events.domain.operations), columns in table order.
INSERT INTO job_operations (job_id, max_runtime_minutes, requeued_from, running, admitted_at,
                            cancel_requested, fireworks_state, fireworks_state_since,
                            last_change_at, stuck_reason, stuck_since)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (job_id) DO UPDATE SET
    max_runtime_minutes = excluded.max_runtime_minutes,
    requeued_from = excluded.requeued_from,
    running = excluded.running,
    admitted_at = excluded.admitted_at,
    cancel_requested = excluded.cancel_requested,
    fireworks_state = excluded.fireworks_state,
    fireworks_state_since = excluded.fireworks_state_since,
    last_change_at = excluded.last_change_at,
    stuck_reason = excluded.stuck_reason,
    stuck_since = excluded.stuck_since;

-- name: delete_job_operations
DELETE FROM job_operations WHERE job_id = $1;
