-- What operators watch: the worker processes, failed and cancelled jobs by
-- queue, and a per-minute rollup of finished attempts.

-- A row per worker process, replaced at each heartbeat; deleted when the
-- process stops, or a day after it went silent.
CREATE TABLE workers (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    -- JSON array of {"name", "slots"}; "*" is every queue.
    queues       TEXT    NOT NULL,
    slots        INTEGER NOT NULL,
    running      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) STRICT;

-- Failed and cancelled jobs by queue: counted for the overview without
-- reading the completed rows, which are most of the table.
CREATE INDEX job_queue_dead ON job_queue (queue, status)
    WHERE status IN ('failed', 'cancelled');

-- Finished attempts by minute (its start), queue, metric ('wait', 'run',
-- 'failed') and bucket (floor(4 * log2(microseconds))). Workers add to it
-- as they record outcomes; charts read an hour of it.
CREATE TABLE job_rollup (
    minute INTEGER NOT NULL,
    queue  TEXT    NOT NULL,
    metric TEXT    NOT NULL CHECK (metric IN ('wait', 'run', 'failed')),
    bucket INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (minute, queue, metric, bucket)
) STRICT, WITHOUT ROWID;
