-- Periodic jobs. A schedule's definition is the JSON text its schedules file
-- declared (compared whole to tell a change); `cursor` is the slot up to
-- which every slot is done with (fired, skipped, or before the schedule
-- existed or while it was paused). Firing moves the cursor conditionally
-- on its old value and inserts the slots' jobs in the same transaction.

CREATE TABLE schedules (
    name       TEXT    PRIMARY KEY,
    definition TEXT    NOT NULL,
    revision   INTEGER NOT NULL DEFAULT 1,
    cursor     INTEGER NOT NULL,
    last_slot  INTEGER,
    paused     INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    created_at INTEGER NOT NULL
) STRICT;

-- The job each slot enqueued. A table of its own rather than a column of
-- job_queue: the queue's hot rows and statements stay as they are, and the
-- primary key refuses a second job for one slot. Jobs deleted by retention
-- take their links with them.
CREATE TABLE schedule_jobs (
    schedule TEXT    NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
    slot     INTEGER NOT NULL,
    job_id   INTEGER NOT NULL REFERENCES job_queue (id) ON DELETE CASCADE,
    PRIMARY KEY (schedule, slot)
) STRICT;

-- For the cascade when retention deletes jobs.
CREATE INDEX schedule_jobs_job ON schedule_jobs (job_id);
