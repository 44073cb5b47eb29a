-- Times are INTEGER microseconds since the Unix epoch (UTC); JSON is TEXT.

CREATE TABLE job_queue (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_type         TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN
                         ('pending', 'processing', 'retry_pending', 'completed', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    max_retries      INTEGER NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    retry_count      INTEGER NOT NULL DEFAULT 0,
    -- Claims so far; the current lease's fencing token.
    attempt          INTEGER NOT NULL DEFAULT 0,
    error_message    TEXT,
    -- JSON array of {"attempt", "at", "error"}, one per failed attempt.
    errors           TEXT    NOT NULL DEFAULT '[]',
    result           TEXT,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    scheduled_at     INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER,
    created_at       INTEGER NOT NULL
) STRICT;

-- The ready set in claim order; final jobs are not in it, so it stays small.
CREATE INDEX job_queue_ready ON job_queue (priority DESC, scheduled_at, id)
    WHERE status IN ('pending', 'retry_pending');

-- Leases, for heartbeats and rescue.
CREATE INDEX job_queue_leased ON job_queue (lease_expires_at)
    WHERE status = 'processing';

-- Named leases: maintenance runs in one process at a time.
CREATE TABLE leader_leases (
    name       TEXT    PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
