-- Pipelines (`after`): the jobs a QUEUED job waits for, in the order it named them. A row
-- lives while its job has not left the queue for the first time: written with the job's
-- first event, deleted when the job is admitted, cancelled or failed. So the table holds the
-- open pipelines only, and the admission loop reads all of it at every decision.
CREATE TABLE job_dependencies (
    job_id    uuid NOT NULL,
    after_id  uuid NOT NULL,
    ord       int  NOT NULL,
    PRIMARY KEY (job_id, after_id)
);
CREATE INDEX job_dependencies_after_idx ON job_dependencies (after_id);
