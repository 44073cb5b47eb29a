-- Due jobs of one queue (?5) at one priority (?6), oldest due first: a range
-- of job_queue_ready_by_queue that ends at the first job not yet due. The
-- caller found no other band to take from (job/bands.sql) and has checked
-- the queue's settings in the same write.
UPDATE job_queue
SET status = 'processing', attempt = attempt + 1, lease_owner = ?1, lease_expires_at = ?2,
    started_at = ?3
WHERE id IN (
    SELECT id FROM job_queue
    WHERE queue = ?5 AND priority = ?6 AND status IN ('pending', 'retry_pending')
        AND scheduled_at <= ?3
    ORDER BY scheduled_at, id
    LIMIT ?4
)
RETURNING id, job_type, payload, status,
    priority, max_retries, retry_count,
    attempt, error_message, errors, result, lease_owner, lease_expires_at,
    scheduled_at, started_at, completed_at, created_at, queue, unique_key
