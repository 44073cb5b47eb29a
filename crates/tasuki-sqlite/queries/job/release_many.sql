-- ?2: a JSON object of each job's attempt by id, {"<id>": attempt, …}. The
-- job is due again in its old place; no retry is spent and the attempt
-- counter stays (it fences).
UPDATE job_queue
SET status = CASE WHEN retry_count = 0 THEN 'pending' ELSE 'retry_pending' END,
    lease_owner = NULL, lease_expires_at = NULL, started_at = NULL
FROM json_each(?2) AS r
WHERE job_queue.id = CAST(r.key AS INTEGER) AND job_queue.attempt = r.value
    AND job_queue.status = 'processing' AND job_queue.lease_expires_at > ?1
RETURNING job_queue.id
