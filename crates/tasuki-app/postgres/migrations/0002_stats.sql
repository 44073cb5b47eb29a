-- Signup statistics are read from the users (`queries/signup/stats.sql`):
-- the daily counter row, which every onboarding updated, is gone from
-- databases made before (the queue's first migration created it then).
DROP TABLE IF EXISTS signup_stats_daily;
