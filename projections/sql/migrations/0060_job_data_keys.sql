-- Per-job data keys of the payload secrets (service.secrets), each wrapped by a master key
-- (`kid` names which). NOT a projection: it is not built from the log and never rebuilt;
-- rows are deleted on purpose (crypto-shredding: the sealed secrets in the log are then gone
-- for good) and updated by key rotation. A row is written just before its job's
-- job.submitted, so a row without a job is a submit that never committed (swept later).
CREATE TABLE job_data_keys (
    job_id       uuid        PRIMARY KEY,
    kid          text        NOT NULL,
    wrapped      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz
);
CREATE INDEX job_data_keys_kid_idx ON job_data_keys (kid);
