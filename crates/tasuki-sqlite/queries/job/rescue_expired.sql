-- The lost attempt counts as failed: retried in its old place, as a release
-- is, or failed without retries left. Its time due stays: set to the
-- rescue's time, it was not yet due to a claim that read its clock before
-- the rescue and ran after it, which took jobs of lower priority first.
UPDATE job_queue
SET status = CASE WHEN retry_count < max_retries THEN 'retry_pending' ELSE 'failed' END,
    retry_count = retry_count + (retry_count < max_retries),
    completed_at = CASE WHEN retry_count < max_retries THEN NULL ELSE ?1 END,
    error_message = 'lease expired',
    errors = json_insert(errors, '$[#]',
        json_object('attempt', attempt, 'at', ?1, 'error', 'lease expired', 'worker', lease_owner)),
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM job_queue
    WHERE status = 'processing' AND lease_expires_at <= ?1
    ORDER BY lease_expires_at
    LIMIT ?2
)
RETURNING id
