-- Applies a change in one statement, so that concurrent changes of different
-- settings both hold. ?2: paused or NULL; ?3/?5: whether the concurrency /
-- the rate limit change, to ?4 / ?6 per ?7 microseconds (NULL: no limit).
INSERT INTO queues (name, paused, concurrency, rate_limit, rate_period, updated_at)
VALUES (?1, coalesce(?2, 0), CASE WHEN ?3 THEN ?4 END, CASE WHEN ?5 THEN ?6 END,
    CASE WHEN ?5 THEN ?7 END, ?8)
ON CONFLICT (name) DO UPDATE SET
    paused = coalesce(?2, paused),
    concurrency = CASE WHEN ?3 THEN ?4 ELSE concurrency END,
    rate_limit = CASE WHEN ?5 THEN ?6 ELSE rate_limit END,
    rate_period = CASE WHEN ?5 THEN ?7 ELSE rate_period END,
    updated_at = ?8
