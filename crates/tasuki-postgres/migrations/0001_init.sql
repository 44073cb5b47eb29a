-- Times are timestamptz; JSON is jsonb. Table and column names match the
-- SQLite store's, so the two read alike.

CREATE TABLE job_queue (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_type         text        NOT NULL,
    payload          jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN
                         ('pending', 'processing', 'retry_pending', 'completed', 'failed', 'cancelled')),
    priority         integer     NOT NULL DEFAULT 0,
    max_retries      integer     NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    retry_count      integer     NOT NULL DEFAULT 0,
    -- Claims so far; the current lease's fencing token.
    attempt          integer     NOT NULL DEFAULT 0,
    error_message    text,
    -- Array of {"attempt", "at" (microseconds since the epoch), "error"}, one per failed attempt.
    errors           jsonb       NOT NULL DEFAULT '[]',
    result           jsonb,
    lease_owner      text,
    lease_expires_at timestamptz,
    scheduled_at     timestamptz NOT NULL,
    started_at       timestamptz,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL
);

-- The ready set in claim order; final jobs are not in it, so it stays small.
CREATE INDEX job_queue_ready ON job_queue (priority DESC, scheduled_at, id)
    WHERE status IN ('pending', 'retry_pending');

-- Leases, for heartbeats and rescue.
CREATE INDEX job_queue_leased ON job_queue (lease_expires_at)
    WHERE status = 'processing';

-- Finished jobs by age, for retention.
CREATE INDEX job_queue_finished ON job_queue (completed_at)
    WHERE status IN ('completed', 'cancelled');

-- New jobs wake idle workers on every host: one notification per inserting
-- statement (not per row), its payload the schema, so that stores in other
-- schemas of the database ignore it.
CREATE FUNCTION job_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tasuki_jobs', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER job_queue_inserted AFTER INSERT ON job_queue
    FOR EACH STATEMENT EXECUTE FUNCTION job_queue_notify();

-- Named leases: maintenance runs in one process at a time.
CREATE TABLE leader_leases (
    name       text        PRIMARY KEY,
    owner      text        NOT NULL,
    expires_at timestamptz NOT NULL
);
