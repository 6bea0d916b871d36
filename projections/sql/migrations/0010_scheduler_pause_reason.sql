-- The reason given with the last pause (NULL when running, or paused without one), so
-- GET /admin/scheduler can say why admissions are stopped without searching the log.
ALTER TABLE scheduler_state ADD COLUMN reason text;
