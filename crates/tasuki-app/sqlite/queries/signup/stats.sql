-- Signups per UTC day, counted when the user was first onboarded: read from
-- the users, so that onboarding writes no shared counter row.
SELECT strftime('%Y-%m-%d', onboarded_at / 1000000, 'unixepoch') AS day, count(*) AS signups
FROM users WHERE onboarded_at IS NOT NULL
GROUP BY day ORDER BY day
