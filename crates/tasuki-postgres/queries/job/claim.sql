-- Due jobs, best first, from every queue but those paused or limited: see
-- tasuki_claim in migrations/0005_plans.sql.
SELECT id AS "id!", job_type AS "job_type!", payload::text AS "payload!", status AS "status!",
    priority AS "priority!", max_retries AS "max_retries!", retry_count AS "retry_count!",
    attempt AS "attempt!", error_message, errors::text AS "errors!", result::text AS "result?", lease_owner,
    lease_expires_at, scheduled_at AS "scheduled_at!", started_at, completed_at, created_at AS "created_at!", queue AS "queue!", unique_key
FROM tasuki_claim($1, $2, $3, $4)
