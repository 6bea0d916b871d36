-- Named queries of job operations: runtime limits, stuck jobs, requeue (service.sql.QUERIES).

-- name: operations_running
-- The operations records of the jobs running on Fireworks (the leader's limit and stuck
-- checks), in the column order of events.domain.operations.JobOperations.
SELECT job_id::text, max_runtime_minutes, requeued_from::text, running, admitted_at,
       cancel_requested, fireworks_state, fireworks_state_since, last_change_at, stuck_reason,
       stuck_since
FROM job_operations
WHERE running
ORDER BY admitted_at, job_id;

-- name: operations_stuck_count
-- Jobs running on Fireworks flagged stuck (the ftq_stuck_jobs gauge).
SELECT count(*) FROM job_operations WHERE running AND stuck_reason IS NOT NULL;
