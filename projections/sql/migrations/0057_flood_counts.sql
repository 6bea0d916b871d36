-- Flood limits count a user's submits of the last minute from the jobs projection
-- (service/api/limits.py, query flood_counts) instead of a token bucket written at every
-- submit: the bucket table goes; jobs_user_newest_idx (user_id, created_at DESC) serves the
-- count.
DROP TABLE submit_buckets;
