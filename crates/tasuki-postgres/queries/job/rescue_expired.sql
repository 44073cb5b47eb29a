-- The lost attempt counts as failed: retried in its old place, as a release
-- is, or failed without retries left. Its time due stays: set to the
-- rescue's time, it was not yet due to a claim that read its clock before
-- the rescue and ran after it, which took jobs of lower priority first.
-- $2 is $1 in microseconds, for the history.
WITH expired AS (
    SELECT id FROM job_queue
    WHERE status = 'processing' AND lease_expires_at <= $1
    ORDER BY lease_expires_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE job_queue AS j
SET status = CASE WHEN j.retry_count < j.max_retries THEN 'retry_pending' ELSE 'failed' END,
    retry_count = j.retry_count + CASE WHEN j.retry_count < j.max_retries THEN 1 ELSE 0 END,
    completed_at = CASE WHEN j.retry_count < j.max_retries THEN NULL ELSE $1 END,
    error_message = 'lease expired',
    errors = j.errors || jsonb_build_array(
        jsonb_build_object('attempt', j.attempt, 'at', $2::int8, 'error', 'lease expired', 'worker', j.lease_owner)),
    lease_expires_at = NULL
FROM expired
WHERE j.id = expired.id
RETURNING j.id
