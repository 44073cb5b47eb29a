-- Signups per UTC day, counted when the user was first onboarded: read from
-- the users, so that onboarding writes no shared counter row, for which
-- concurrent completions would wait on each other.
SELECT to_char(onboarded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS "day!", count(*) AS "signups!"
FROM users WHERE onboarded_at IS NOT NULL
GROUP BY 1 ORDER BY 1
