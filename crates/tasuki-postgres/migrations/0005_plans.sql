-- Claims, and the time of the next due job, in functions whose settings
-- leave the planner one plan: the ready index read in claim order, and
-- each job taken by its key. A prepared statement keeps the plan that it
-- was given first, and that plan follows the table's size and statistics
-- at that moment: planned while the queue was nearly empty, a claim read
-- and sorted every due job, or scanned the whole table, at every call once
-- the queue had grown. With these settings the planner has nothing cheaper
-- to take. (They make every
-- other plan look dear by adding a huge cost, which would also set JIT
-- compiling each call: 300 ms. JIT is off too.)

-- Due jobs, best first, from every queue but those paused or limited (a
-- limited queue's jobs are claimed by tasuki_claim_queue, in a transaction
-- that holds its settings' row). SKIP LOCKED lets concurrent claimers on any
-- host take disjoint rows without waiting on each other.
CREATE FUNCTION tasuki_claim(p_owner text, p_lease timestamptz, p_now timestamptz, p_max bigint)
RETURNS SETOF job_queue LANGUAGE plpgsql
SET enable_sort = off SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
AS $$
BEGIN
    RETURN QUERY
    WITH next AS (
        SELECT id FROM job_queue
        WHERE status IN ('pending', 'retry_pending') AND scheduled_at <= p_now
            AND queue NOT IN (SELECT name FROM queues
                              WHERE paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)
        ORDER BY priority DESC, scheduled_at, id
        LIMIT p_max
        FOR UPDATE SKIP LOCKED
    )
    UPDATE job_queue AS j
    SET status = 'processing', attempt = j.attempt + 1, lease_owner = p_owner,
        lease_expires_at = p_lease, started_at = p_now
    FROM next
    WHERE j.id = next.id
    RETURNING j.*;
END
$$;

-- Due jobs of one queue, best first: of a queue neither paused nor limited,
-- or (p_limited) of a limited one, as many as its limits leave, in the
-- transaction that holds its settings row (FOR UPDATE), so that its
-- claimers count and claim one at a time.
CREATE FUNCTION tasuki_claim_queue(p_owner text, p_lease timestamptz, p_now timestamptz,
                                   p_max bigint, p_queue text, p_limited boolean)
RETURNS SETOF job_queue LANGUAGE plpgsql
SET enable_sort = off SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
AS $$
BEGIN
    RETURN QUERY
    WITH next AS (
        SELECT id FROM job_queue
        WHERE queue = p_queue AND status IN ('pending', 'retry_pending') AND scheduled_at <= p_now
            AND (p_limited OR NOT EXISTS (SELECT 1 FROM queues WHERE name = p_queue
                                          AND (paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)))
        ORDER BY priority DESC, scheduled_at, id
        LIMIT p_max
        FOR UPDATE SKIP LOCKED
    )
    UPDATE job_queue AS j
    SET status = 'processing', attempt = j.attempt + 1, lease_owner = p_owner,
        lease_expires_at = p_lease, started_at = p_now
    FROM next
    WHERE j.id = next.id
    RETURNING j.*;
END
$$;

-- When the next job is due, of every queue but the paused ones (a worker
-- with free slots and nothing to claim sleeps until then). Read by an index
-- scan, which marks the entries of jobs claimed since as dead, so that the
-- scans after it skip them; a bitmap scan (planned while the table was
-- small) marks nothing and read every such entry at each call.
CREATE FUNCTION tasuki_next_scheduled() RETURNS timestamptz LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
BEGIN
    RETURN (SELECT min(scheduled_at) FROM job_queue
            WHERE status IN ('pending', 'retry_pending')
                AND queue NOT IN (SELECT name FROM queues WHERE paused));
END
$$;

-- The same, of one queue, unless it is paused.
CREATE FUNCTION tasuki_next_scheduled_queue(p_queue text) RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
BEGIN
    RETURN (SELECT min(scheduled_at) FROM job_queue
            WHERE queue = p_queue AND status IN ('pending', 'retry_pending')
                AND NOT EXISTS (SELECT 1 FROM queues WHERE name = p_queue AND paused));
END
$$;
