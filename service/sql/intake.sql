-- Named read queries of job intake (POST /jobs/batch, the flood limits, `after`):
-- service.sql.INTAKE. Job rows in the column order of service.api.views.JobRow.

-- name: jobs_by_idempotency_keys
SELECT id::text, kind, state, display_name, gpu_count, created_at, started_at, completed_at,
       error, fireworks_job_name, fireworks_state, progress, user_email,
       fireworks_payload::text, cancel_requested_by, user_id::text, request_fingerprint,
       idempotency_key
FROM jobs WHERE user_id = $1::uuid AND idempotency_key = ANY($2::text[]);

-- name: queued_of_user
SELECT count(*) FROM jobs WHERE user_id = $1::uuid AND state = 'QUEUED';

-- name: take_submit_tokens
-- The submit-rate token bucket of user $1: capacity $2 (one minute of submits), refilled at
-- $4 tokens per second, takes $3 tokens if at least least($3, $2) are there (a batch larger
-- than the capacity needs a full bucket and leaves it in debt). One statement: the row lock
-- of ON CONFLICT serialises the replicas (run it on its own: now() is the statement's time).
-- No row returned: refused, nothing changed.
INSERT INTO submit_buckets AS b (user_id, tokens, updated_at)
VALUES ($1::uuid, $2::float8 - $3::float8, now())
ON CONFLICT (user_id) DO UPDATE
SET tokens = least($2::float8, b.tokens
                 + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * $4::float8)
             - $3::float8,
    updated_at = greatest(b.updated_at, now())
WHERE least($2::float8, b.tokens
            + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * $4::float8)
      >= least($3::float8, $2::float8)
RETURNING b.tokens;

-- name: submit_tokens
-- The tokens in user $1's bucket now (capacity $2, refill $3 per second); NULL: no bucket yet.
SELECT least($2::float8, tokens
             + greatest(0, extract(epoch FROM now() - updated_at)::float8) * $3::float8)
FROM submit_buckets WHERE user_id = $1::uuid;

-- name: owners_and_states
-- Owner and state of the jobs a submit names in `after`.
SELECT id::text, user_id::text, state FROM jobs WHERE id = ANY($1::uuid[]);
