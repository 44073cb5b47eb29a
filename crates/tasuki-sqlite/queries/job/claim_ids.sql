-- The jobs of ?4 (a JSON array of ids), which candidates.sql found ready in
-- the same write.
UPDATE job_queue
SET status = 'processing', attempt = attempt + 1, lease_owner = ?1, lease_expires_at = ?2,
    started_at = ?3
WHERE id IN (SELECT value FROM json_each(?4)) AND status IN ('pending', 'retry_pending')
RETURNING id, job_type, payload, status,
    priority, max_retries, retry_count,
    attempt, error_message, errors, result, lease_owner, lease_expires_at,
    scheduled_at, started_at, completed_at, created_at, queue, unique_key
