-- Admission policies (events.domain.scheduling): what a job brings to the planner beyond its
-- `jobs` row, and the per-user knobs. `job_scheduling` holds a row only for a job whose GPU
-- type or priority is not the default (h200, 50): the common submit stays one statement.
CREATE TABLE job_scheduling (
    job_id    uuid PRIMARY KEY,
    gpu_type  text NOT NULL,
    priority  int  NOT NULL
);

-- users.cap is the small-class cap (the one cap when classes are off); cap_big the big-class
-- cap; `cap_unlimited` the classes in which the user has no hard cap; `share` the fair-share
-- weight (NULL: 1); `max_priority` the highest priority the user may submit with (NULL: 50).
ALTER TABLE users
    ADD COLUMN cap_big       int,
    ADD COLUMN cap_unlimited text[] NOT NULL DEFAULT '{}',
    ADD COLUMN share         double precision,
    ADD COLUMN max_priority  int;

-- The policy last recorded in force (scheduler.policy_in_force) and its settings.
ALTER TABLE scheduler_state
    ADD COLUMN policy          text,
    ADD COLUMN policy_settings jsonb;
