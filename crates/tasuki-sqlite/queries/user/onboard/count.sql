-- A `user_created` job's effects are the statements of this folder, run in
-- order on the writer in one transaction; a later run of the same job
-- changes only the profile. First: the signup count, the first time only.
INSERT INTO signup_stats_daily (day, signups)
SELECT :day, 1 FROM users WHERE id = :user_id AND onboarded_at IS NULL
ON CONFLICT (day) DO UPDATE SET signups = signups + 1
