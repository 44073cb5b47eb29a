-- ?2: a JSON object of each job's attempt by id, {"<id>": attempt, …}; ?3:
-- one of results by id, for the completions that have one. Objects of
-- scalars, so `json_each` hands out plain values instead of re-serializing
-- a nested object per row. Fenced: only the current, unexpired lease may
-- complete its job.
UPDATE job_queue
SET status = 'completed', completed_at = ?1, result = ?3 -> ('$."' || job_queue.id || '"'),
    lease_expires_at = NULL
FROM json_each(?2) AS c
WHERE job_queue.id = CAST(c.key AS INTEGER) AND job_queue.attempt = c.value
    AND job_queue.status = 'processing' AND job_queue.lease_expires_at > ?1
RETURNING job_queue.id
