-- The day's signup count, with the user's first welcome email.
INSERT INTO signup_stats_daily (day, signups) VALUES (:day, 1)
ON CONFLICT (day) DO UPDATE SET signups = signups + 1
