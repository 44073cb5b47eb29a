-- A `user_created` job's effects in one round trip to the writer, inside the
-- caller's transaction; a later run of the same job changes only the profile.
-- Each statement takes its own `?`s, in order (see `user_onboard`).

-- The signup count, the first time only.
INSERT INTO signup_stats_daily (day, signups)
SELECT ?, 1 FROM users WHERE id = ? AND onboarded_at IS NULL
ON CONFLICT (day) DO UPDATE SET signups = signups + 1;

-- The profile follows the latest run.
INSERT INTO user_profiles (user_id, recommendation_tags, region, rank, updated_at)
SELECT id, ?, ?, ?, ? FROM users WHERE id = ?
ON CONFLICT (user_id) DO UPDATE SET
    recommendation_tags = excluded.recommendation_tags, region = excluded.region,
    rank = excluded.rank, updated_at = excluded.updated_at;

-- At most one email of a kind per user.
INSERT INTO email_outbox (user_id, kind, recipient, subject, body, created_at)
SELECT id, ?, email, ?, ?, ? FROM users WHERE id = ?
ON CONFLICT (user_id, kind) DO NOTHING;

-- Its delivery job, when the email is new (`changes()` counts the insert above).
INSERT INTO job_queue (job_type, payload, priority, max_retries, scheduled_at, created_at)
SELECT ?, json_object('outbox_id', last_insert_rowid()), ?, ?, ?, ? WHERE changes() = 1;

-- No row when the user does not exist.
SELECT o.id AS "outbox_id!", u.onboarded_at IS NULL AS "first_time!: bool",
    changes() AS "delivery_enqueued!: bool"
FROM users AS u JOIN email_outbox AS o ON o.user_id = u.id AND o.kind = ?
WHERE u.id = ?;

UPDATE users SET onboarded_at = ? WHERE id = ? AND onboarded_at IS NULL;
