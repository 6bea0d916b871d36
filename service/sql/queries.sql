-- Named read queries of the service (service.sql.QUERIES). Values are always parameters.

-- name: planner_inputs
-- What a plan needs besides the queue, in one round trip: whether the scheduler is paused (on
-- every row, and on the one row there is when no user has load or a cap), then one row per
-- user with PROGRESS jobs or a cap: user id, PROGRESS count and GPUs (NULL: none), cap.
SELECT s.paused, u.user_id, u.progress_count, u.progress_gpus, u.cap
FROM (SELECT coalesce((SELECT paused FROM scheduler_state), false) AS paused) AS s
LEFT JOIN (
    SELECT coalesce(l.user_id, c.id)::text AS user_id, l.progress_count, l.progress_gpus, c.cap
    FROM (SELECT user_id, progress_count, progress_gpus FROM user_load
          WHERE progress_count > 0) AS l
    FULL JOIN (SELECT id, cap FROM users WHERE cap IS NOT NULL) AS c ON c.id = l.user_id
) AS u ON true;

-- name: progress_job_ids
-- The jobs in PROGRESS (few: bounded by the GPUs), for the API's plan snapshots.
SELECT id::text FROM jobs WHERE state = 'PROGRESS';

-- name: scheduler_paused
SELECT paused FROM scheduler_state;

-- name: user_by_id
SELECT id::text, email, role, cap FROM users WHERE id::text = $1;

-- name: user_by_email
SELECT id::text, email, role, cap FROM users WHERE email = lower($1);

-- name: users
SELECT id::text, email, role, cap FROM users ORDER BY email;

-- name: key_owner_email
SELECT u.email FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id::text = $1;

-- name: active_key
SELECT u.id::text, u.email, u.role, u.cap, k.key_hash
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL;

-- name: active_keys
-- `active_key` for several hashes at once (service.directory.KeyLookup).
SELECT u.id::text, u.email, u.role, u.cap, k.key_hash
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.key_hash = ANY($1::text[]) AND k.revoked_at IS NULL;

-- name: keys
SELECT k.id::text, u.email, k.label, k.created_at, k.revoked_at
FROM api_keys k JOIN users u ON u.id = k.user_id ORDER BY k.created_at;

-- HTTP API (service/api). Job rows in the column order of service.api.views.JOB_COLUMNS.

-- name: api_job_by_id
SELECT id::text, kind, state, display_name, gpu_count, created_at, started_at, completed_at,
       error, fireworks_job_name, jobs.fireworks_state, progress, user_email,
       fireworks_payload::text, cancel_requested_by, user_id::text, request_fingerprint,
       o.max_runtime_minutes, o.requeued_from::text, o.stuck_reason
FROM jobs LEFT JOIN job_operations o ON o.job_id = jobs.id
WHERE id = $1::uuid;

-- name: api_job_by_idempotency_key
SELECT id::text, kind, state, display_name, gpu_count, created_at, started_at, completed_at,
       error, fireworks_job_name, jobs.fireworks_state, progress, user_email,
       fireworks_payload::text, cancel_requested_by, user_id::text, request_fingerprint,
       o.max_runtime_minutes, o.requeued_from::text, o.stuck_reason
FROM jobs LEFT JOIN job_operations o ON o.job_id = jobs.id
WHERE user_id = $1::uuid AND idempotency_key = $2;

-- name: api_jobs_page
-- $1 user id (NULL: all), $2 state, $3 kind, $4 user email or id (admin filter),
-- $5/$6 cursor (created_at, id) of the last row of the previous page, $7 limit.
SELECT id::text, kind, state, display_name, gpu_count, created_at, started_at, completed_at,
       error, fireworks_job_name, jobs.fireworks_state, progress, user_email,
       fireworks_payload::text, cancel_requested_by, user_id::text, request_fingerprint,
       o.max_runtime_minutes, o.requeued_from::text, o.stuck_reason
FROM jobs LEFT JOIN job_operations o ON o.job_id = jobs.id
WHERE ($1::uuid IS NULL OR user_id = $1::uuid)
  AND ($2::text IS NULL OR state = $2::text)
  AND ($3::text IS NULL OR kind = $3::text)
  AND ($4::text IS NULL OR user_email = lower($4::text) OR user_id::text = $4::text)
  AND ($5::timestamptz IS NULL OR (created_at, id) < ($5::timestamptz, $6::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $7;

-- name: api_queued_jobs
SELECT id::text, user_id::text, user_email, kind, gpu_count, display_name, created_at,
       fireworks_payload::text
FROM jobs WHERE state = 'QUEUED' ORDER BY created_at, id;

-- name: api_queue_depth
SELECT count(*) FROM jobs WHERE state = 'QUEUED';

-- name: api_jobs_in_progress
SELECT count(*) FROM jobs WHERE state = 'PROGRESS';

-- name: api_ping
SELECT 1;

-- name: history_job_owner
-- The owner of a job and their email (history routes: members see only their own jobs).
SELECT user_id::text, user_email FROM jobs WHERE id = $1::uuid;

-- name: history_job_emails
-- The owners' emails of the given jobs (admins' history items carry `user`).
SELECT id::text, user_email FROM jobs WHERE id = ANY($1::uuid[]);

-- name: history_owned_jobs
-- Of the given job ids, those the user owns (member filtering of /events/stream).
SELECT id::text FROM jobs WHERE user_id = $1::uuid AND id = ANY($2::uuid[]);

-- name: cli_log_exists
-- `ftq replay`/`ftq audit`: whether the event log table exists (migrated at least once).
SELECT to_regclass('events') IS NOT NULL;

-- name: cli_log_size
-- `ftq replay`/`ftq audit`: events in the log, to size the progress bar.
SELECT count(*) FROM events;

-- name: reconcile_progress_jobs
-- PROGRESS jobs to reconcile; $1 false: only open admissions and requested cancels.
SELECT id::text, admission_open, cancel_requested_by IS NOT NULL, fireworks_state, progress,
       kind
FROM jobs
WHERE state = 'PROGRESS' AND ($1 OR admission_open OR cancel_requested_by IS NOT NULL)
ORDER BY created_at, id;

-- name: reconcile_terminal_among
SELECT id::text FROM jobs
WHERE id = ANY($1::uuid[]) AND state IN ('SUCCESS', 'FAIL', 'CANCELLED');

-- name: leader_try_lock
SELECT pg_try_advisory_lock($1);

-- name: leader_alive
SELECT 1;

-- name: queue_head
-- The first $1 QUEUED jobs in FIFO order (an index scan of jobs_queue_idx).
SELECT id::text, user_id::text, created_at, gpu_count
FROM jobs WHERE state = 'QUEUED' ORDER BY created_at, id LIMIT $1;

-- name: queue_after
-- The next $1 QUEUED jobs in FIFO order after the one created at $2 with id $3.
SELECT id::text, user_id::text, created_at, gpu_count
FROM jobs WHERE state = 'QUEUED' AND (created_at, id) > ($2, $3::uuid)
ORDER BY created_at, id LIMIT $1;
