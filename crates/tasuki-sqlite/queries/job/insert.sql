-- A unique job whose key is held inserts nothing, and unique_holder.sql
-- finds the holder in the same write.
INSERT INTO job_queue (job_type, payload, queue, priority, max_retries, unique_key, unique_states,
    scheduled_at, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT DO NOTHING
RETURNING id, job_type, payload, status, priority, max_retries, retry_count, attempt, error_message, errors,
    result, lease_owner, lease_expires_at, scheduled_at, started_at, completed_at, created_at, queue, unique_key
