-- Named queues, unique jobs, and the settings of queues.

ALTER TABLE job_queue ADD COLUMN queue text NOT NULL DEFAULT 'default';
-- A unique job's key, and the statuses in which it holds (a bit per status,
-- as `UniqueStates` numbers them; the live ones always set).
ALTER TABLE job_queue ADD COLUMN unique_key text;
ALTER TABLE job_queue ADD COLUMN unique_states smallint;

-- The ready set of each queue, in claim order, for workers that serve one
-- queue; `job_queue_ready` stays for workers that serve them all.
CREATE INDEX job_queue_ready_by_queue ON job_queue (queue, priority DESC, scheduled_at, id)
    WHERE status IN ('pending', 'retry_pending');

-- At most one job of a type with a key in the statuses it names. Enqueues
-- insert with ON CONFLICT DO NOTHING against it: no advisory lock and no
-- look-up-then-insert; a concurrent enqueue of the same key waits for the
-- first to commit, then sees it.
CREATE UNIQUE INDEX job_queue_unique ON job_queue (job_type, unique_key)
    WHERE unique_key IS NOT NULL AND (unique_states & CASE status
        WHEN 'pending' THEN 1 WHEN 'processing' THEN 2 WHEN 'retry_pending' THEN 4
        WHEN 'completed' THEN 8 WHEN 'failed' THEN 16 ELSE 32 END) <> 0;

-- Settings of the queues that have any; a queue with no row runs freely.
CREATE TABLE queues (
    name        text        PRIMARY KEY,
    paused      boolean     NOT NULL DEFAULT false,
    -- The most jobs processing at once over every process; NULL: no limit.
    concurrency integer     CHECK (concurrency > 0),
    -- At most rate_limit starts in any window of rate_period microseconds.
    rate_limit  integer     CHECK (rate_limit > 0),
    rate_period bigint      CHECK (rate_period > 0),
    updated_at  timestamptz NOT NULL,
    CHECK ((rate_limit IS NULL) = (rate_period IS NULL))
);

-- The claims of a rate-limited queue within its window, each with how many
-- jobs it started: a claim sums them, and deletes the ones the window left.
CREATE TABLE queue_starts (
    queue      text        NOT NULL,
    started_at timestamptz NOT NULL,
    jobs       integer     NOT NULL CHECK (jobs > 0)
);
CREATE INDEX queue_starts_window ON queue_starts (queue, started_at);
