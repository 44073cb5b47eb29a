INSERT INTO signup_stats_daily (day, signups) VALUES ($1, 1)
ON CONFLICT (day) DO UPDATE SET signups = signup_stats_daily.signups + 1
