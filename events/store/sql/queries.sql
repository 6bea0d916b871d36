-- Named query blocks, loaded once at import by events.sql.QUERIES. Values are always
-- parameters; jsonb goes in and out as text so a pool-wide json codec cannot change it.

-- name: append_new_stream
-- The first event of a new stream; if the stream exists, version 1 does and this raises a
-- unique violation. The hot path (every submit), so as plain as a single-row INSERT can be.
INSERT INTO events (stream_id, stream_version, type, schema_version, data, metadata)
VALUES ($1, 1, $2, $3, $4::jsonb, $5::jsonb)
RETURNING position, transaction_id, recorded_at;

-- name: append
-- Appends $3..$5 to stream $1 at versions $2+1.. only if the stream is at version $2:
-- version $2 must exist (else no row is inserted: the stream is behind), and version $2+1
-- must not (else a unique violation: the stream is ahead, or a concurrent append won).
-- Versions are contiguous from 1, so together they mean the stream's head is exactly $2.
INSERT INTO events (stream_id, stream_version, type, schema_version, data, metadata)
SELECT $1, $2 + new.n, new.type, new.schema_version, new.data::jsonb, $6::jsonb
FROM unnest($3::text[], $4::smallint[], $5::text[])
        WITH ORDINALITY AS new (type, schema_version, data, n)
WHERE $2 = 0 OR EXISTS (SELECT FROM events WHERE stream_id = $1 AND stream_version = $2)
ORDER BY new.n
RETURNING position, transaction_id, recorded_at;

-- name: stream_version
SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1;

-- name: notify_appended
-- $1: payloads, each a JSON array of stream ids (events.store.notify_payloads).
SELECT pg_notify('ftq_events', payload) FROM unnest($1::text[]) AS p (payload);

-- name: read_stream
SELECT position, transaction_id, stream_id, stream_version, type, schema_version,
       data::text, metadata::text, recorded_at
FROM events
WHERE stream_id = $1 AND stream_version > $2
ORDER BY stream_version;

-- name: read_all
-- Gap-free: only transactions below the oldest one still running are visible, so no event
-- can later commit in front of the returned ones.
SELECT position, transaction_id, stream_id, stream_version, type, schema_version,
       data::text, metadata::text, recorded_at
FROM events
WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id, position
LIMIT $3;

-- name: committed_after
-- Whether any committed event lies after the cursor (readable now or held back by xmin).
SELECT EXISTS (
    SELECT 1 FROM events WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
);

-- name: cursor_at_position
SELECT transaction_id, position FROM events WHERE position = $1;

-- name: head_cursor
SELECT transaction_id, position
FROM events
WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id DESC, position DESC
LIMIT 1;

-- name: migrations_lock
-- Transaction-scoped: concurrent runners queue here and re-check what is applied.
SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2));

-- name: migrations_table
-- The migrator's own table (not a numbered migration: it records them). `checksum` is the
-- SHA-256 of the applied file; it came after the table, hence the ALTER, which is a no-op once
-- the column exists. Rows recorded before it have NULL until the next run backfills them.
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  text        NOT NULL,
    version    int         NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum   text,
    PRIMARY KEY (component, version)
);
ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text;

-- name: migrations_table_exists
SELECT to_regclass('schema_migrations') IS NOT NULL;

-- name: migrations_applied
SELECT component, version FROM schema_migrations;

-- name: migrations_checksums
-- Every recorded migration with its checksum (NULL: recorded before checksums were kept).
SELECT component, version, checksum FROM schema_migrations;

-- name: migration_checksum_backfill
UPDATE schema_migrations SET checksum = $3
WHERE component = $1 AND version = $2 AND checksum IS NULL;

-- name: migration_record
INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4);
