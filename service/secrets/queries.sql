-- Named queries of service.secrets (the job_data_keys table). Values are always parameters.

-- name: insert_keys
-- The keys of a group of new jobs, one statement ($1 job ids, $2 master key ids, $3 wrapped
-- keys, in step). A key stored again (a group refused, then its jobs recorded one by one)
-- changes nothing.
INSERT INTO job_data_keys (job_id, kid, wrapped)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])
ON CONFLICT (job_id) DO NOTHING;

-- name: key_of
SELECT kid, wrapped FROM job_data_keys WHERE job_id = $1::uuid;

-- name: delete_key
DELETE FROM job_data_keys WHERE job_id = $1::uuid;

-- name: keys_by_kid
-- How many data keys each master key wraps (the start-up check).
SELECT kid, count(*) FROM job_data_keys GROUP BY kid ORDER BY kid;

-- name: keys_to_rewrap
-- The next $2 data keys wrapped by a master key other than $1, after job id $3.
SELECT job_id::text, kid, wrapped FROM job_data_keys
WHERE kid <> $1 AND job_id > $3::uuid ORDER BY job_id LIMIT $2;

-- name: rewrap_key
-- Compare and set: only if the row is still wrapped by the key it was read under.
UPDATE job_data_keys SET kid = $3, wrapped = $4, rewrapped_at = now()
WHERE job_id = $1::uuid AND kid = $2;

-- name: due_for_shredding
-- Ended jobs whose data key outlived the retention ($1: ended before this time), $2 at most.
SELECT k.job_id::text FROM job_data_keys k JOIN jobs j ON j.id = k.job_id
WHERE j.state IN ('SUCCESS', 'FAIL', 'CANCELLED') AND j.completed_at < $1
ORDER BY j.completed_at LIMIT $2;

-- name: orphan_keys
-- Data keys of submits that never committed (no job), stored more than $1 ago (the
-- database's clock: the row's created_at is its now()).
DELETE FROM job_data_keys k
WHERE k.created_at < now() - $1::interval AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = k.job_id);

-- name: submitted_events
-- The job.submitted events after position $1, $2 at most: for `ftq secrets report`.
SELECT position, stream_id, schema_version, data::text FROM events
WHERE type = 'job.submitted' AND position > $1 ORDER BY position LIMIT $2;

-- name: jobs_with_a_key
SELECT job_id::text FROM job_data_keys;

-- name: job_states
SELECT id::text, state FROM jobs;

-- name: log_is_empty
SELECT NOT EXISTS (SELECT 1 FROM events);

-- name: import_event
-- One exported event appended to a fresh log (its position is the new log's next).
INSERT INTO events (stream_id, stream_version, type, schema_version, data, metadata, recorded_at)
VALUES ($1, $2::int, $3, $4, $5::jsonb, $6::jsonb, $7);

-- name: all_keys
SELECT job_id::text, kid, wrapped, created_at FROM job_data_keys;

-- name: copy_key
INSERT INTO job_data_keys (job_id, kid, wrapped, created_at) VALUES ($1::uuid, $2, $3, $4)
ON CONFLICT (job_id) DO NOTHING;

-- name: webhook_secrets
SELECT id::text, sealed_secret FROM webhooks;

-- name: reseal_webhook
-- Compare and set: only if the secret is still sealed as it was read.
UPDATE webhooks SET sealed_secret = $3 WHERE id = $1::uuid AND sealed_secret = $2;
