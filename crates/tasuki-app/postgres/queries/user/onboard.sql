-- A `user_created` job's writes in one statement, run in the transaction
-- that completes the job: the user onboarded (which the signup statistics
-- count), the profile (a second job for the same user replaces it) and one
-- welcome email per user, whose id it returns. No row when the user does not
-- exist; `outbox_id` is NULL when the user had its welcome email already:
-- the email leaves the database, so a second job sends none.
WITH u AS (
    UPDATE users SET onboarded_at = coalesce(onboarded_at, $2) WHERE id = $1
    RETURNING id, email
), profile AS (
    INSERT INTO user_profiles (user_id, recommendation_tags, region, rank, updated_at)
    SELECT id, $3, $4, $5, $2 FROM u
    ON CONFLICT (user_id) DO UPDATE SET
        recommendation_tags = excluded.recommendation_tags, region = excluded.region,
        rank = excluded.rank, updated_at = excluded.updated_at
), email AS (
    INSERT INTO email_outbox (user_id, kind, recipient, subject, body, created_at)
    SELECT id, $6, email, $7, $8, $2 FROM u
    ON CONFLICT (user_id, kind) DO NOTHING
    RETURNING id
)
SELECT (SELECT id FROM email) AS outbox_id FROM u
