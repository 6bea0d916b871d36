-- Live ETAs (service/eta.py) feed their runtime estimator the jobs finished since the last
-- rebuild, every few seconds: read in (completed_at, id) order from here, not a scan of
-- every job.
CREATE INDEX jobs_finished_idx ON jobs (completed_at, id)
    WHERE state IN ('SUCCESS', 'FAIL') AND started_at IS NOT NULL;
