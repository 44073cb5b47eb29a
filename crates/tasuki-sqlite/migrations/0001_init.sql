-- Times are INTEGER microseconds since the Unix epoch (UTC); JSON is TEXT.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT    NOT NULL UNIQUE,
    age             INTEGER NOT NULL CHECK (age >= 0),
    name            TEXT,
    bio             TEXT,
    is_active       INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    additional_data TEXT,
    created_at      INTEGER NOT NULL,
    -- Set once by the first run of the user's `user_created` job.
    onboarded_at    INTEGER
) STRICT;

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

CREATE TABLE user_profiles (
    user_id             INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    recommendation_tags TEXT    NOT NULL,
    region              TEXT,
    rank                TEXT,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE TABLE signup_stats_daily (
    day     TEXT    PRIMARY KEY,
    signups INTEGER NOT NULL
) STRICT;

CREATE TABLE email_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    recipient  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    created_at INTEGER NOT NULL,
    sent_at    INTEGER,
    UNIQUE (user_id, kind)
) STRICT;

-- Each attempt of a `probe` job, so that tests can prove attempts never overlap.
CREATE TABLE probe_runs (
    job_id     INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    worker     TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    PRIMARY KEY (job_id, attempt)
) STRICT;

-- Named leases: maintenance runs in one process at a time.
CREATE TABLE leader_leases (
    name       TEXT    PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
