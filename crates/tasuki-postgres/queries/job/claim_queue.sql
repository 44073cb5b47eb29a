-- Due jobs of one queue, best first: of a queue neither paused nor limited,
-- or ($6) of a limited one, as many as its limits leave, in the transaction
-- that holds its settings row (FOR UPDATE), so that its claimers count and
-- claim one at a time.
WITH next AS (
    SELECT id FROM job_queue
    WHERE queue = $5 AND status IN ('pending', 'retry_pending') AND scheduled_at <= $3
        AND ($6 OR NOT EXISTS (SELECT 1 FROM queues WHERE name = $5
                               AND (paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)))
    ORDER BY priority DESC, scheduled_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE job_queue AS j
SET status = 'processing', attempt = j.attempt + 1, lease_owner = $1, lease_expires_at = $2,
    started_at = $3
FROM next
WHERE j.id = next.id
RETURNING j.id AS "id!", j.job_type AS "job_type!", j.payload::text AS "payload!", j.status AS "status!",
    j.priority AS "priority!", j.max_retries AS "max_retries!", j.retry_count AS "retry_count!",
    j.attempt AS "attempt!", j.error_message, j.errors::text AS "errors!", j.result::text AS "result?", j.lease_owner,
    j.lease_expires_at, j.scheduled_at AS "scheduled_at!", j.started_at, j.completed_at, j.created_at AS "created_at!", j.queue AS "queue!", j.unique_key
