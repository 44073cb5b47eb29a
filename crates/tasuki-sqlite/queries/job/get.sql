SELECT id, job_type, payload, status, priority, max_retries, retry_count, attempt, error_message, errors,
    result, lease_owner, lease_expires_at, scheduled_at, started_at, completed_at, created_at, queue, unique_key
FROM job_queue
WHERE id = ?1
