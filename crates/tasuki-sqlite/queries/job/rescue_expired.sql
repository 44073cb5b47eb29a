-- The lost attempt counts as failed: retried now, or failed without retries left.
UPDATE job_queue
SET status = CASE WHEN retry_count < max_retries THEN 'retry_pending' ELSE 'failed' END,
    retry_count = retry_count + (retry_count < max_retries),
    scheduled_at = ?1,
    completed_at = CASE WHEN retry_count < max_retries THEN NULL ELSE ?1 END,
    error_message = 'lease expired',
    errors = json_insert(errors, '$[#]',
        json_object('attempt', attempt, 'at', ?1, 'error', 'lease expired', 'worker', lease_owner)),
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM job_queue
    WHERE status = 'processing' AND lease_expires_at <= ?1
    ORDER BY lease_expires_at
    LIMIT ?2
)
RETURNING id
