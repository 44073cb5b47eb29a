-- ?2: a JSON array of {"id", "attempt", "error", "retry_at"?}; no retry_at
-- means the job fails for good. Fenced like completion.
UPDATE job_queue
SET status = CASE WHEN f.retry_at IS NULL THEN 'failed' ELSE 'retry_pending' END,
    retry_count = retry_count + (f.retry_at IS NOT NULL),
    scheduled_at = coalesce(f.retry_at, scheduled_at),
    completed_at = CASE WHEN f.retry_at IS NULL THEN ?1 END,
    error_message = f.error,
    errors = json_insert(errors, '$[#]',
        json_object('attempt', job_queue.attempt, 'at', ?1, 'error', f.error, 'worker', job_queue.lease_owner)),
    lease_expires_at = NULL
FROM (
    SELECT value ->> '$.id' AS id, value ->> '$.attempt' AS attempt, value ->> '$.error' AS error,
        value ->> '$.retry_at' AS retry_at
    FROM json_each(?2)
) AS f
WHERE job_queue.id = f.id AND job_queue.attempt = f.attempt
    AND job_queue.status = 'processing' AND job_queue.lease_expires_at > ?1
RETURNING job_queue.id
