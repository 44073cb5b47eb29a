-- A batch's lock of its held rows and its completion keep one plan too.
-- Left to choose, PostgreSQL planned them anew at each call while a batch
-- held fewer than ten jobs (a plan for an array of unknown length looked
-- dearer than one for the few ids at hand): with WORKER_COUNT 3, as many
-- plans as batches. A generic plan is safe only if there is one plan to
-- make. A plan made on a fresh table once walked the lease index
-- (`status = 'processing'` lets the planner use it) for every batch, a
-- millisecond a call; so these statements read jobs by key alone. They
-- name no status: a job holds a lease exactly while it is processing, which
-- this check states for every row, so `lease_expires_at > now` says both.
-- (Adding it reads the whole table under the migration's lock.)
ALTER TABLE job_queue ADD CONSTRAINT job_queue_lease_while_processing
    CHECK ((status = 'processing') = (lease_expires_at IS NOT NULL));

-- The jobs whose attempt still holds an unexpired lease, locked in id order
-- until the transaction that completes them commits: a rescue or a
-- heartbeat skips them meanwhile, and the attempt's writes commit only with
-- its completion.
CREATE FUNCTION tasuki_held(p_now timestamptz, p_ids int8[], p_attempts int4[])
RETURNS SETOF bigint LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    SELECT j.id
    FROM job_queue AS j JOIN unnest(p_ids, p_attempts) AS c (id, attempt)
        ON j.id = c.id AND j.attempt = c.attempt
    WHERE j.lease_expires_at > p_now
    ORDER BY j.id
    FOR UPDATE OF j;
END
$$;

-- Fenced: only the current, unexpired lease may complete its job.
CREATE FUNCTION tasuki_complete(p_now timestamptz, p_ids int8[], p_attempts int4[],
                                p_results jsonb[])
RETURNS SETOF bigint LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    UPDATE job_queue AS j
    SET status = 'completed', completed_at = p_now, result = c.result, lease_expires_at = NULL
    FROM unnest(p_ids, p_attempts, p_results) AS c (id, attempt, result)
    WHERE j.id = c.id AND j.attempt = c.attempt AND j.lease_expires_at > p_now
    RETURNING j.id;
END
$$;
