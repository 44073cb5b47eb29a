UPDATE job_queue
SET status = 'cancelled', completed_at = ?2
WHERE id = ?1 AND status IN ('pending', 'retry_pending')
RETURNING id, job_type, payload, status, priority, max_retries, retry_count, attempt, error_message, errors,
    result, lease_owner, lease_expires_at, scheduled_at, started_at, completed_at, created_at, queue, unique_key
