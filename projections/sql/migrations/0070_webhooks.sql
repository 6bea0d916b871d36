-- Webhook subscriptions (service/webhooks). Not a projection of the log: the log records each
-- subscription and its changes (webhook.* events, never the secret); this table adds what the
-- log must not or cannot hold: the signing secret, sealed with FTQ_SECRET_KEY (AES-GCM), and
-- the subscription's reader position in the log, advanced only after a 2xx delivery.
CREATE TABLE webhooks (
    id              uuid PRIMARY KEY,
    owner_id        uuid        NOT NULL,
    scope           text        NOT NULL CHECK (scope IN ('own', 'user', 'all')),
    user_id         uuid,
    url             text        NOT NULL,
    types           text[]      NOT NULL,
    sealed_secret   bytea       NOT NULL,
    after_txid      xid8        NOT NULL,
    after_position  bigint      NOT NULL,
    state           text        NOT NULL DEFAULT 'active'
                                CHECK (state IN ('active', 'failing', 'deleted')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered       bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner_idx ON webhooks (owner_id);
CREATE INDEX webhooks_due_idx ON webhooks (next_attempt_at) WHERE state = 'active';
