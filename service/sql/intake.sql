-- Named read queries of job intake (POST /jobs/batch, the flood limits, `after`):
-- service.sql.INTAKE. Job rows in the column order of service.api.views.JobRow.

-- name: jobs_by_idempotency_keys
SELECT id::text, kind, state, display_name, gpu_count, created_at, started_at, completed_at,
       error, fireworks_job_name, fireworks_state, progress, user_email,
       fireworks_payload::text, cancel_requested_by, user_id::text, request_fingerprint,
       idempotency_key
FROM jobs WHERE user_id = $1::uuid AND idempotency_key = ANY($2::text[]);
