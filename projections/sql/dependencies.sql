-- Named queries of the `job_dependencies` projection (pipelines: `after`), loaded once at
-- import (projections.sql.DEPENDENCIES).

-- name: insert_dependencies
-- One row per (job, job it waits for), as arrays: job ids, dependency ids, their order.
INSERT INTO job_dependencies (job_id, after_id, ord)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[]);

-- name: delete_dependencies
DELETE FROM job_dependencies WHERE job_id = $1::uuid;

-- name: open_dependencies
-- Every open pipeline edge with the state of the job waited for (NULL: no such row).
SELECT d.job_id::text, d.after_id::text, a.state
FROM job_dependencies d LEFT JOIN jobs a ON a.id = d.after_id
ORDER BY d.job_id, d.ord;

-- name: broken_dependencies
-- QUEUED jobs waiting for a job that ended FAIL or CANCELLED (the leader fails them).
SELECT d.job_id::text, d.after_id::text, a.state
FROM job_dependencies d JOIN jobs a ON a.id = d.after_id
WHERE a.state IN ('FAIL', 'CANCELLED')
ORDER BY d.job_id, d.ord;

-- name: rebuild_dependencies_table
CREATE TEMP TABLE job_dependencies (LIKE public.job_dependencies INCLUDING DEFAULTS)
    ON COMMIT DROP;

-- name: lock_dependencies
LOCK TABLE public.job_dependencies IN EXCLUSIVE MODE;

-- name: replace_dependencies
TRUNCATE public.job_dependencies;
INSERT INTO public.job_dependencies SELECT * FROM pg_temp.job_dependencies;
