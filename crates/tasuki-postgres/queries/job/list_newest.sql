-- `list.sql`, newest first: the page below the cursor $3, from the id $6 up
-- (the window that a bounded scan looks at; 0: every id).
SELECT id AS "id!", job_type AS "job_type!", payload::text AS "payload!", status AS "status!",
    priority AS "priority!", max_retries AS "max_retries!", retry_count AS "retry_count!",
    attempt AS "attempt!", error_message, errors::text AS "errors!", result::text AS "result?", lease_owner,
    lease_expires_at, scheduled_at AS "scheduled_at!", started_at, completed_at, created_at AS "created_at!", queue AS "queue!", unique_key
FROM job_queue
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR job_type = $2)
    AND ($5::text IS NULL OR queue = $5) AND id < $3 AND id >= $6
ORDER BY id DESC
LIMIT $4
