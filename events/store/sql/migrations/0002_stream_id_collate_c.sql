-- Stream ids are compared byte by byte. Every append inserts into the unique
-- (stream_id, stream_version) index, and a "C" comparison skips the database locale's
-- collation routines there (bench/event_store.py: about 5 % more appends/s at 8 writers on a
-- C.UTF-8 database; more under locales such as en_US.UTF-8). Only the index is rebuilt: text
-- under another collation is the same bytes, so the table is not rewritten.
ALTER TABLE events ALTER COLUMN stream_id TYPE text COLLATE "C";
