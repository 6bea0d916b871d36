-- Named read queries of the service (service.sql.QUERIES). Values are always parameters.

-- name: policy_in_force
-- The policy last recorded in force by a leader (scheduler.policy_in_force), and its settings.
SELECT policy, policy_settings::text FROM scheduler_state WHERE policy IS NOT NULL;

-- name: scheduler_paused
SELECT paused FROM scheduler_state;

-- name: scheduler_switch
SELECT paused, reason, changed_by, changed_at FROM scheduler_state;

-- name: user_max_priority
SELECT max_priority FROM users WHERE id = $1::uuid;

-- name: user_by_id
SELECT id::text, email, role, cap, cap_big, cap_unlimited, share, max_priority
FROM users WHERE id::text = $1;

-- name: user_by_email
SELECT id::text, email, role, cap, cap_big, cap_unlimited, share, max_priority
FROM users WHERE email = lower($1);

-- name: users
SELECT id::text, email, role, cap, cap_big, cap_unlimited, share, max_priority
FROM users ORDER BY email;

-- name: key_owner_email
SELECT u.email FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id::text = $1;

-- name: active_keys
-- The active users owning these key hashes (service.directory.KeyLookup).
SELECT u.id::text, u.email, u.role, u.cap, k.key_hash
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.key_hash = ANY($1::text[]) AND k.revoked_at IS NULL;

-- name: keys
SELECT k.id::text, u.email, k.label, k.created_at, k.revoked_at
FROM api_keys k JOIN users u ON u.id = k.user_id ORDER BY k.created_at;

-- HTTP API (service/api). Job rows in the column order of service.api.views.JOB_COLUMNS.

-- name: api_job_by_id
SELECT j.id::text, j.kind, j.state, j.display_name, j.gpu_count, j.created_at, j.started_at,
       j.completed_at, j.error, j.fireworks_job_name, j.fireworks_state, j.progress,
       j.user_email, j.fireworks_payload::text, j.cancel_requested_by, j.user_id::text,
       j.request_fingerprint, o.max_runtime_minutes, o.requeued_from::text, o.stuck_reason,
       coalesce(s.gpu_type, 'h200'), coalesce(s.priority, 50)
FROM jobs j LEFT JOIN job_operations o ON o.job_id = j.id
LEFT JOIN job_scheduling s ON s.job_id = j.id
WHERE j.id = $1::uuid;

-- name: api_job_by_idempotency_key
SELECT j.id::text, j.kind, j.state, j.display_name, j.gpu_count, j.created_at, j.started_at,
       j.completed_at, j.error, j.fireworks_job_name, j.fireworks_state, j.progress,
       j.user_email, j.fireworks_payload::text, j.cancel_requested_by, j.user_id::text,
       j.request_fingerprint, o.max_runtime_minutes, o.requeued_from::text, o.stuck_reason,
       coalesce(s.gpu_type, 'h200'), coalesce(s.priority, 50)
FROM jobs j LEFT JOIN job_operations o ON o.job_id = j.id
LEFT JOIN job_scheduling s ON s.job_id = j.id
WHERE j.user_id = $1::uuid AND j.idempotency_key = $2;

-- name: api_jobs_page
-- $1 user id (NULL: all), $2 state, $3 kind, $4 user email or id (admin filter),
-- $5/$6 cursor (created_at, id) of the last row of the previous page, $7 limit.
SELECT j.id::text, j.kind, j.state, j.display_name, j.gpu_count, j.created_at, j.started_at,
       j.completed_at, j.error, j.fireworks_job_name, j.fireworks_state, j.progress,
       j.user_email, j.fireworks_payload::text, j.cancel_requested_by, j.user_id::text,
       j.request_fingerprint, o.max_runtime_minutes, o.requeued_from::text, o.stuck_reason,
       coalesce(s.gpu_type, 'h200'), coalesce(s.priority, 50)
FROM jobs j LEFT JOIN job_operations o ON o.job_id = j.id
LEFT JOIN job_scheduling s ON s.job_id = j.id
WHERE ($1::uuid IS NULL OR j.user_id = $1::uuid)
  AND ($2::text IS NULL OR j.state = $2::text)
  AND ($3::text IS NULL OR j.kind = $3::text)
  AND ($4::text IS NULL OR j.user_email = lower($4::text) OR j.user_id::text = $4::text)
  AND ($5::timestamptz IS NULL OR (j.created_at, j.id) < ($5::timestamptz, $6::uuid))
ORDER BY j.created_at DESC, j.id DESC
LIMIT $7;

-- name: api_queued_jobs
SELECT j.id::text, j.user_id::text, j.user_email, j.kind, j.gpu_count, j.display_name,
       j.created_at, j.fireworks_payload::text, coalesce(s.gpu_type, 'h200'),
       coalesce(s.priority, 50)
FROM jobs j LEFT JOIN job_scheduling s ON s.job_id = j.id
WHERE j.state = 'QUEUED' ORDER BY j.created_at, j.id;

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
-- PROGRESS jobs to reconcile; $1 false: only open admissions and requested cancels. With
-- what is known of each on Fireworks (state, progress, accounting), so that an observation
-- the domain calls no news is passed over without reading the job's stream.
SELECT j.id::text, j.admission_open, j.cancel_requested_by IS NOT NULL, j.kind,
       j.fireworks_state, j.progress, u.accelerator_seconds, u.estimated_cost
FROM jobs j LEFT JOIN job_usage u ON u.job_id = j.id
WHERE j.state = 'PROGRESS' AND ($1 OR j.admission_open OR j.cancel_requested_by IS NOT NULL)
ORDER BY j.created_at, j.id;

-- name: reconcile_terminal_among
SELECT id::text FROM jobs
WHERE id = ANY($1::uuid[]) AND state IN ('SUCCESS', 'FAIL', 'CANCELLED');

-- name: leader_try_lock
SELECT pg_try_advisory_lock($1);

-- name: leader_alive
SELECT 1;

-- name: queue_head
-- The first $1 QUEUED jobs in FIFO order (an index scan of jobs_queue_idx), as the planner
-- sees them: id, user, created_at, GPUs, GPU type, kind, priority, runtime limit.
SELECT j.id::text, j.user_id::text, j.created_at, j.gpu_count,
       coalesce(s.gpu_type, 'h200'), j.kind, coalesce(s.priority, 50), o.max_runtime_minutes
FROM jobs j LEFT JOIN job_scheduling s ON s.job_id = j.id
LEFT JOIN job_operations o ON o.job_id = j.id
WHERE j.state = 'QUEUED' ORDER BY j.created_at, j.id LIMIT $1;

-- name: queue_after
-- The next $1 QUEUED jobs in FIFO order after the one created at $2 with id $3.
SELECT j.id::text, j.user_id::text, j.created_at, j.gpu_count,
       coalesce(s.gpu_type, 'h200'), j.kind, coalesce(s.priority, 50), o.max_runtime_minutes
FROM jobs j LEFT JOIN job_scheduling s ON s.job_id = j.id
LEFT JOIN job_operations o ON o.job_id = j.id
WHERE j.state = 'QUEUED' AND (j.created_at, j.id) > ($2, $3::uuid)
ORDER BY j.created_at, j.id LIMIT $1;

-- name: planner_inputs
-- Everything a decision needs besides the queue, in one round trip: whether admission is
-- paused; as JSON arrays the jobs in PROGRESS (id, user, GPUs, GPU type, kind, started_at,
-- runtime limit) and the users with a cap, a no-cap class or a share (id, small cap, big
-- cap, classes without a cap, share); whether a QUEUED job has a priority other than the
-- default (then the policy's order is not the FIFO order: a decision reads the whole queue).
SELECT coalesce((SELECT paused FROM scheduler_state), false),
       (SELECT coalesce(json_agg(json_build_array(
                   j.id::text, j.user_id::text, j.gpu_count, coalesce(s.gpu_type, 'h200'),
                   j.kind, j.started_at, o.max_runtime_minutes)), '[]')
        FROM jobs j LEFT JOIN job_scheduling s ON s.job_id = j.id
        LEFT JOIN job_operations o ON o.job_id = j.id
        WHERE j.state = 'PROGRESS')::text,
       (SELECT coalesce(json_agg(json_build_array(
                   id::text, cap, cap_big, cap_unlimited, share)), '[]')
        FROM users
        WHERE cap IS NOT NULL OR cap_big IS NOT NULL OR cardinality(cap_unlimited) > 0
           OR share IS NOT NULL)::text,
       EXISTS (SELECT 1 FROM job_scheduling s JOIN jobs j ON j.id = s.job_id
               WHERE s.priority <> 50 AND j.state = 'QUEUED');

-- name: progress_gpus_by_type
-- GPUs of ftq's own PROGRESS jobs per GPU type.
SELECT coalesce(s.gpu_type, 'h200'), sum(j.gpu_count)::int
FROM jobs j LEFT JOIN job_scheduling s ON s.job_id = j.id
WHERE j.state = 'PROGRESS' GROUP BY 1;
