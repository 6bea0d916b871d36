-- Operations of a job (events.domain.operations): its own runtime limit, the job it was
-- requeued from, and, while it runs on Fireworks, what the leader's runtime-limit and stuck
-- checks read (service.admission.limits). Written with the job's row from the same folded
-- state, rebuilt with the other projections (projections.rebuild). A job with none of these
-- has no row.
CREATE TABLE job_operations (
    job_id                uuid PRIMARY KEY,
    max_runtime_minutes   int,
    requeued_from         uuid,
    running               boolean     NOT NULL DEFAULT false,
    admitted_at           timestamptz,
    cancel_requested      boolean     NOT NULL DEFAULT false,
    fireworks_state       text,
    fireworks_state_since timestamptz,
    last_change_at        timestamptz,
    stuck_reason          text,
    stuck_since           timestamptz
);
CREATE INDEX job_operations_running_idx ON job_operations (job_id) WHERE running;
