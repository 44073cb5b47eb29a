-- The job that holds a unique key: the predicate is job_queue_unique's.
SELECT id AS "id!", job_type AS "job_type!", payload::text AS "payload!", status AS "status!",
    priority AS "priority!", max_retries AS "max_retries!", retry_count AS "retry_count!",
    attempt AS "attempt!", error_message, errors::text AS "errors!", result::text AS "result?", lease_owner,
    lease_expires_at, scheduled_at AS "scheduled_at!", started_at, completed_at, created_at AS "created_at!", queue AS "queue!", unique_key
FROM job_queue
WHERE job_type = $1 AND unique_key = $2 AND unique_key IS NOT NULL AND (unique_states & CASE status
    WHEN 'pending' THEN 1 WHEN 'processing' THEN 2 WHEN 'retry_pending' THEN 4
    WHEN 'completed' THEN 8 WHEN 'failed' THEN 16 ELSE 32 END) <> 0
