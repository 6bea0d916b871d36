-- Flood limits (service/api/limits.py). Not a projection of the log: `submit_buckets` is each
-- member's submit-rate token bucket (FTQ_SUBMIT_RATE_PER_MINUTE), shared by every replica;
-- losing it only refills the buckets.
CREATE TABLE submit_buckets (
    user_id     uuid PRIMARY KEY,
    tokens      double precision NOT NULL,
    updated_at  timestamptz      NOT NULL
);
-- FTQ_MAX_QUEUED_PER_USER: a user's QUEUED jobs are counted at every submit.
CREATE INDEX jobs_queued_by_user_idx ON jobs (user_id) WHERE state = 'QUEUED';
