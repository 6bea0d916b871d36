-- Dashboard sign-in sessions (service/ui). Not a projection of the log: a session is only the
-- SHA-256 of a random cookie token tied to the API key that signed in. Every lookup joins
-- api_keys, so revoking the key ends its sessions at once; rows past expires_at are ignored.
CREATE TABLE ui_sessions (
    token_hash  text PRIMARY KEY,
    key_id      uuid        NOT NULL,
    csrf_token  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX ui_sessions_expiry_idx ON ui_sessions (expires_at);
