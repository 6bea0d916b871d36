-- GPU-hour accounting (events.domain.usage): one row per admitted job, written with the job's
-- row from the same folded state, rebuilt with the other projections (projections.rebuild).
CREATE TABLE job_usage (
    job_id              uuid PRIMARY KEY,
    user_id             uuid             NOT NULL,
    user_email          text             NOT NULL,
    kind                text             NOT NULL,
    gpu_count           int              NOT NULL,
    admitted_at         timestamptz      NOT NULL,
    completed_at        timestamptz,
    accelerator_seconds double precision,
    estimated_cost      double precision
);
CREATE INDEX job_usage_user_idx ON job_usage (user_id, admitted_at);
CREATE INDEX job_usage_window_idx ON job_usage (admitted_at, completed_at);
