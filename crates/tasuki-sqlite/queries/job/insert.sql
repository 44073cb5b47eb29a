INSERT INTO job_queue (job_type, payload, priority, max_retries, scheduled_at, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
RETURNING id, job_type, payload, status, priority, max_retries, retry_count, attempt, error_message, errors,
    result, lease_owner, lease_expires_at, scheduled_at, started_at, completed_at, created_at
