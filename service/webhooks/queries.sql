-- name: webhook_insert
INSERT INTO webhooks (id, owner_id, scope, user_id, url, types, sealed_secret,
                      after_txid, after_position)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::xid8, $9);

-- name: webhook_list
-- $1: only this owner's (NULL: every subscription, for admins). Deleted ones are not shown.
SELECT id::text, owner_id::text, scope, user_id::text, url, types, state, attempts,
       next_attempt_at, last_error, delivered, after_position, created_at
FROM webhooks
WHERE state <> 'deleted' AND ($1::uuid IS NULL OR owner_id = $1::uuid)
ORDER BY created_at, id;

-- name: webhook_get
SELECT id::text, owner_id::text, scope, user_id::text, url, types, state, attempts,
       next_attempt_at, last_error, delivered, after_position, created_at
FROM webhooks WHERE id = $1 AND state <> 'deleted';

-- name: webhook_set_state
UPDATE webhooks SET state = $2, attempts = 0, next_attempt_at = now(), last_error = NULL
WHERE id = $1 AND state <> 'deleted';

-- name: webhook_due
-- Active subscriptions whose next attempt is due, with their sealed secrets.
SELECT id::text, owner_id::text, scope, user_id::text, url, types, sealed_secret,
       after_txid::text::bigint, after_position, attempts
FROM webhooks
WHERE state = 'active' AND next_attempt_at <= now()
ORDER BY next_attempt_at, id;

-- name: webhook_advance
-- Move the reader past an event (delivered, $4 = 1, or not for this subscription, $4 = 0).
UPDATE webhooks
SET after_txid = $2::xid8, after_position = $3, attempts = 0, last_error = NULL,
    delivered = delivered + $4
WHERE id = $1 AND state = 'active';

-- name: webhook_retry_later
UPDATE webhooks
SET attempts = $2, next_attempt_at = now() + make_interval(secs => $3), last_error = $4
WHERE id = $1 AND state = 'active';

-- name: webhook_mark_failing
UPDATE webhooks SET state = 'failing', attempts = $2, last_error = $3
WHERE id = $1 AND state = 'active';

-- name: webhook_job_owners
SELECT id::text, user_id::text, user_email FROM jobs WHERE id = ANY($1::uuid[]);

-- name: webhook_lock
-- Serialises the writers of one subscription's stream; its state, NULL when deleted or absent.
SELECT state FROM webhooks WHERE id = $1 AND state <> 'deleted' FOR UPDATE;
