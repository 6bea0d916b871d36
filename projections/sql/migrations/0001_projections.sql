-- Projections: current state derived from the event log, written in the same transaction as
-- the append. Every row can be rebuilt from the log (`ftq replay --verify`).

CREATE TABLE jobs (
    id                  uuid PRIMARY KEY,
    user_id             uuid        NOT NULL,
    user_email          text        NOT NULL,
    kind                text        NOT NULL CHECK (kind IN ('SFT', 'DPO', 'RFT')),
    state               text        NOT NULL
                        CHECK (state IN ('QUEUED', 'PROGRESS', 'SUCCESS', 'FAIL', 'CANCELLED')),
    display_name        text,
    gpu_count           int         NOT NULL,
    fireworks_payload   jsonb       NOT NULL,
    created_at          timestamptz NOT NULL,
    started_at          timestamptz,
    completed_at        timestamptz,
    error               text,
    fireworks_job_id    text,
    fireworks_job_name  text,
    fireworks_state     text,
    progress            double precision,
    admission_open      boolean     NOT NULL DEFAULT false,
    cancel_requested_by text,
    idempotency_key     text,
    request_fingerprint text,
    -- Per-row checkpoint: the stream version and global position this row is built up to.
    version             int         NOT NULL,
    last_position       bigint      NOT NULL
);

-- A second submit with the same Idempotency-Key by the same user violates this and rolls
-- back its own append; the API then answers with the first job.
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_queue_idx ON jobs (created_at, id) WHERE state = 'QUEUED';
CREATE INDEX jobs_active_idx ON jobs (state) WHERE state = 'PROGRESS';
CREATE INDEX jobs_user_newest_idx ON jobs (user_id, created_at DESC, id DESC);
CREATE INDEX jobs_newest_idx ON jobs (created_at DESC, id DESC);

-- Per-user load: jobs and GPUs in PROGRESS (admission open or running on Fireworks).
CREATE TABLE user_load (
    user_id         uuid PRIMARY KEY,
    progress_count  int NOT NULL DEFAULT 0 CHECK (progress_count >= 0),
    progress_gpus   int NOT NULL DEFAULT 0 CHECK (progress_gpus >= 0)
);

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    email       text        NOT NULL UNIQUE,
    role        text        NOT NULL CHECK (role IN ('member', 'admin')),
    cap         int,
    created_at  timestamptz NOT NULL
);

-- Only SHA-256 hashes of keys; the plaintext exists once, in the answer that issued it.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id),
    key_hash    text        NOT NULL UNIQUE,
    label       text,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE TABLE scheduler_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    paused      boolean     NOT NULL DEFAULT false,
    changed_by  text,
    changed_at  timestamptz
);
INSERT INTO scheduler_state (singleton, paused) VALUES (true, false);

-- Where a projection rebuild (or any asynchronous consumer) has read the log up to.
CREATE TABLE projection_checkpoints (
    name            text PRIMARY KEY,
    transaction_id  xid8        NOT NULL,
    position        bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
