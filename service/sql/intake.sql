-- Named read queries of job intake (POST /jobs/batch, the flood limits, `after`):
-- service.sql.INTAKE. Job rows in the column order of service.api.views.JobRow.

-- name: jobs_by_idempotency_keys
SELECT id::text, kind, state, display_name, gpu_count, created_at, started_at, completed_at,
       error, fireworks_job_name, fireworks_state, progress, user_email,
       fireworks_payload::text, cancel_requested_by, user_id::text, request_fingerprint,
       idempotency_key
FROM jobs WHERE user_id = $1::uuid AND idempotency_key = ANY($2::text[]);

-- name: flood_counts
-- User $1's QUEUED jobs, the jobs they submitted in the last minute and the oldest of those
-- (the submit rate is computed from the jobs projection, so every replica sees the same
-- figures: one read, no write), and the database's now.
SELECT count(*) FILTER (WHERE state = 'QUEUED')::int,
       count(*) FILTER (WHERE created_at > now() - interval '1 minute')::int,
       min(created_at) FILTER (WHERE created_at > now() - interval '1 minute'),
       now()
FROM jobs
WHERE user_id = $1::uuid AND (state = 'QUEUED' OR created_at > now() - interval '1 minute');

-- name: owners_and_states
-- Owner and state of the jobs a submit names in `after`.
SELECT id::text, user_id::text, state FROM jobs WHERE id = ANY($1::uuid[]);
