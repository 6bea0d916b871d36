-- The stream version's check moves from the table to a domain, for the cost of an append.
-- PostgreSQL rebuilds a table CHECK from its stored text in every INSERT statement: in a perf
-- profile of 8 writers appending (bench/event_store.py), ExecConstraints, nearly all of it
-- stringToNode and ExecPrepareExpr for this one check, took 1.5 % of the machine's samples,
-- about 3 µs of server CPU per append. A domain's check comes compiled from the backend's
-- type cache (InitDomainConstraintRef: 0.2 %). Version 0 or below is refused as before.
--
-- The old check goes first and the domain gets its check last, so the column's type change
-- neither rewrites the table nor rebuilds its indexes; adding the check scans the rows once.
-- Clients see int: results and comparisons are of the base type. Only a parameter assigned
-- straight to the column is of the domain, which asyncpg looks up once per connection (about
-- 7 ms); the store's statements compute the version (`1`, `$2 + n`), so they never do.
ALTER TABLE events DROP CONSTRAINT events_stream_version_check;
CREATE DOMAIN event_stream_version AS int;
ALTER TABLE events ALTER COLUMN stream_version TYPE event_stream_version;
ALTER DOMAIN event_stream_version
    ADD CONSTRAINT event_stream_version_positive CHECK (VALUE > 0);
