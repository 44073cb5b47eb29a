-- The jobs whose attempt still holds an unexpired lease, of ?2: a JSON object
-- of each job's attempt by id, {"<id>": attempt, …}. Run on the writer, so
-- the answer holds until its transaction commits.
SELECT job_queue.id
FROM job_queue JOIN json_each(?2) AS c ON job_queue.id = CAST(c.key AS INTEGER)
WHERE job_queue.attempt = c.value
    AND job_queue.status = 'processing' AND job_queue.lease_expires_at > ?1
