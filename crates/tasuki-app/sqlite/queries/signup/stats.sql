SELECT day, signups FROM signup_stats_daily ORDER BY day
