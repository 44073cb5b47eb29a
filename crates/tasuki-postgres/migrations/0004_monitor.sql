-- What operators watch: the worker processes, failed and cancelled jobs by
-- queue, and a per-minute rollup of finished attempts.

-- A row per worker process, replaced at each heartbeat; deleted when the
-- process stops, or a day after it went silent.
CREATE TABLE workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    -- Array of {"name", "slots"}; "*" is every queue.
    queues       jsonb       NOT NULL,
    slots        integer     NOT NULL,
    running      integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);

-- Failed and cancelled jobs by queue: counted for the overview without
-- reading the completed rows, which are most of the table.
CREATE INDEX job_queue_dead ON job_queue (queue, status)
    WHERE status IN ('failed', 'cancelled');

-- Finished attempts by minute (its start), queue, metric ('wait', 'run',
-- 'failed') and bucket (floor(4 * log2(microseconds))). Workers add to it
-- as they record outcomes; charts read an hour of it.
CREATE TABLE job_rollup (
    minute timestamptz NOT NULL,
    queue  text        NOT NULL,
    metric text        NOT NULL CHECK (metric IN ('wait', 'run', 'failed')),
    bucket integer     NOT NULL,
    count  bigint      NOT NULL,
    PRIMARY KEY (minute, queue, metric, bucket)
);
