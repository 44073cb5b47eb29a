-- A `user_created` job's effects in one statement; a later run of the same
-- job changes only the profile. The user's row is locked first, so runs for
-- one user take turns. No row when the user does not exist.
WITH u AS (
    SELECT id, email, onboarded_at IS NULL AS first_time FROM users WHERE id = $1 FOR UPDATE
), onboarded AS (
    UPDATE users SET onboarded_at = $2 FROM u WHERE users.id = u.id AND u.first_time
    RETURNING users.id
), counted AS (
    -- The signup count, the first time only.
    INSERT INTO signup_stats_daily (day, signups) SELECT $3, 1 FROM onboarded
    ON CONFLICT (day) DO UPDATE SET signups = signup_stats_daily.signups + 1
), profile AS (
    -- The profile follows the latest run.
    INSERT INTO user_profiles (user_id, recommendation_tags, region, rank, updated_at)
    SELECT id, $4, $5, $6, $2 FROM u
    ON CONFLICT (user_id) DO UPDATE SET
        recommendation_tags = excluded.recommendation_tags, region = excluded.region,
        rank = excluded.rank, updated_at = excluded.updated_at
), email AS (
    -- At most one email of a kind per user.
    INSERT INTO email_outbox (user_id, kind, recipient, subject, body, created_at)
    SELECT id, $7, email, $8, $9, $2 FROM u
    ON CONFLICT (user_id, kind) DO NOTHING
    RETURNING id
), delivery AS (
    -- Its delivery job, when the email is new.
    INSERT INTO job_queue (job_type, payload, priority, max_retries, scheduled_at, created_at)
    SELECT $10, jsonb_build_object('outbox_id', id), $11, $12, $2, $2 FROM email
    RETURNING id
)
-- The email of an earlier run is in this statement's snapshot, unless that
-- run committed while this one waited for the user's lock: then it is NULL.
SELECT coalesce((SELECT id FROM email),
        (SELECT o.id FROM email_outbox AS o WHERE o.user_id = $1 AND o.kind = $7))
        AS "outbox_id?",
    u.first_time AS "first_time!", EXISTS (SELECT FROM delivery) AS "delivery_enqueued!"
FROM u
