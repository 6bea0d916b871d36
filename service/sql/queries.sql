-- Named read queries of the service (service.sql.QUERIES). Values are always parameters.

-- name: queue
SELECT id::text, user_id::text, created_at, gpu_count
FROM jobs WHERE state = 'QUEUED' ORDER BY created_at, id;

-- name: user_load
SELECT user_id::text, progress_count, progress_gpus FROM user_load WHERE progress_count > 0;

-- name: user_caps
SELECT id::text, cap FROM users WHERE cap IS NOT NULL;

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

-- name: keys
SELECT k.id::text, u.email, k.label, k.created_at, k.revoked_at
FROM api_keys k JOIN users u ON u.id = k.user_id ORDER BY k.created_at;
