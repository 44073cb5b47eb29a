UPDATE job_queue
SET status = 'pending', retry_count = 0, scheduled_at = ?2, completed_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = ?1 AND status IN ('failed', 'cancelled')
RETURNING id, job_type, payload, status, priority, max_retries, retry_count, attempt, error_message, errors,
    result, lease_owner, lease_expires_at, scheduled_at, started_at, completed_at, created_at, queue, unique_key
