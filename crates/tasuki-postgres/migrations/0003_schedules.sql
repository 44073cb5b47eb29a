-- Periodic jobs, as on SQLite (see its 0004_schedules.sql). The definition
-- is text, not jsonb, so that it compares as it was written.

CREATE TABLE schedules (
    name       text        PRIMARY KEY,
    definition text        NOT NULL,
    revision   bigint      NOT NULL DEFAULT 1,
    cursor     timestamptz NOT NULL,
    last_slot  timestamptz,
    paused     boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);

-- The job each slot enqueued; the primary key refuses a second job for one
-- slot, and jobs deleted by retention take their links with them.
CREATE TABLE schedule_jobs (
    schedule text        NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
    slot     timestamptz NOT NULL,
    job_id   bigint      NOT NULL REFERENCES job_queue (id) ON DELETE CASCADE,
    PRIMARY KEY (schedule, slot)
);

CREATE INDEX schedule_jobs_job ON schedule_jobs (job_id);
