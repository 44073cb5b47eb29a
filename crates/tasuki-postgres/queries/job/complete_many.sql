-- Fenced: only the current, unexpired lease may complete its job.
UPDATE job_queue AS j
SET status = 'completed', completed_at = $1, result = c.result, lease_expires_at = NULL
FROM unnest($2::int8[], $3::int4[], $4::jsonb[]) AS c (id, attempt, result)
WHERE j.id = c.id AND j.attempt = c.attempt
    AND j.status = 'processing' AND j.lease_expires_at > $1
RETURNING j.id
