-- The application's tables. Times are INTEGER microseconds since the Unix
-- epoch (UTC); JSON is TEXT. `IF NOT EXISTS`: databases made before the
-- application had migrations of its own have them from the queue's first.

CREATE TABLE IF NOT EXISTS users (
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

CREATE TABLE IF NOT EXISTS user_profiles (
    user_id             INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    recommendation_tags TEXT    NOT NULL,
    region              TEXT,
    rank                TEXT,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS email_outbox (
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
CREATE TABLE IF NOT EXISTS probe_runs (
    job_id     INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    worker     TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    PRIMARY KEY (job_id, attempt)
) STRICT;
