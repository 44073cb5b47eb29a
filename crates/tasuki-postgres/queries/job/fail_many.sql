-- A NULL retry_at means the job fails for good; $2 is $1 in microseconds,
-- for the history. Fenced like completion.
UPDATE job_queue AS j
SET status = CASE WHEN f.retry_at IS NULL THEN 'failed' ELSE 'retry_pending' END,
    retry_count = j.retry_count + CASE WHEN f.retry_at IS NULL THEN 0 ELSE 1 END,
    scheduled_at = coalesce(f.retry_at, j.scheduled_at),
    completed_at = CASE WHEN f.retry_at IS NULL THEN $1 END,
    error_message = f.error,
    errors = j.errors || jsonb_build_array(
        jsonb_build_object('attempt', j.attempt, 'at', $2::int8, 'error', f.error, 'worker', j.lease_owner)),
    lease_expires_at = NULL
FROM unnest($3::int8[], $4::int4[], $5::text[], $6::timestamptz[]) AS f (id, attempt, error, retry_at)
WHERE j.id = f.id AND j.attempt = f.attempt
    AND j.status = 'processing' AND j.lease_expires_at > $1
RETURNING j.id
