-- The job is due again in its old place; no retry is spent and the attempt
-- counter stays (it fences).
UPDATE job_queue AS j
SET status = CASE WHEN j.retry_count = 0 THEN 'pending' ELSE 'retry_pending' END,
    lease_owner = NULL, lease_expires_at = NULL, started_at = NULL
FROM unnest($2::int8[], $3::int4[]) AS r (id, attempt)
WHERE j.id = r.id AND j.attempt = r.attempt
    AND j.status = 'processing' AND j.lease_expires_at > $1
RETURNING j.id
