-- ?2: a JSON array of {"id", "attempt", "result"?}. Fenced: only the current,
-- unexpired lease may complete its job.
UPDATE job_queue
SET status = 'completed', completed_at = ?1, result = c.result, lease_expires_at = NULL
FROM (
    SELECT value ->> '$.id' AS id, value ->> '$.attempt' AS attempt, value -> '$.result' AS result
    FROM json_each(?2)
) AS c
WHERE job_queue.id = c.id AND job_queue.attempt = c.attempt
    AND job_queue.status = 'processing' AND job_queue.lease_expires_at > ?1
RETURNING job_queue.id
