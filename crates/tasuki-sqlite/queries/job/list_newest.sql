-- `list.sql`, newest first: the page below the cursor ?3, from the id ?6 up
-- (the window that a bounded scan looks at; 0: every id).
SELECT id, job_type, payload, status, priority, max_retries, retry_count, attempt, error_message, errors,
    result, lease_owner, lease_expires_at, scheduled_at, started_at, completed_at, created_at, queue, unique_key
FROM job_queue
WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR job_type = ?2) AND (?5 IS NULL OR queue = ?5)
    AND id < ?3 AND id >= ?6
ORDER BY id DESC
LIMIT ?4
