-- The queues that a claim must not take from freely: paused, or limited.
SELECT name, paused, concurrency, rate_limit, rate_period
FROM queues
WHERE (paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL) AND (?1 IS NULL OR name = ?1)
