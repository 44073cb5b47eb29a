-- One statement: SQLite runs it under the write lock, so no two claimers get
-- one job. Every queue but those paused or limited: a limited queue's jobs
-- are claimed by claim_queue.sql, after its limits are counted.
UPDATE job_queue
SET status = 'processing', attempt = attempt + 1, lease_owner = ?1, lease_expires_at = ?2,
    started_at = ?3
WHERE id IN (
    SELECT id FROM job_queue
    WHERE status IN ('pending', 'retry_pending') AND scheduled_at <= ?3
        AND queue NOT IN (SELECT name FROM queues
                          WHERE paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)
    ORDER BY priority DESC, scheduled_at, id
    LIMIT ?4
)
RETURNING id, job_type, payload, status,
    priority, max_retries, retry_count,
    attempt, error_message, errors, result, lease_owner, lease_expires_at,
    scheduled_at, started_at, completed_at, created_at, queue, unique_key
