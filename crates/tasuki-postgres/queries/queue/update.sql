-- Applies a change in one statement, so that concurrent changes of different
-- settings both hold. $2: paused or NULL; $3/$5: whether the concurrency /
-- the rate limit change, to $4 / $6 per $7 microseconds (NULL: no limit).
INSERT INTO queues (name, paused, concurrency, rate_limit, rate_period, updated_at)
VALUES ($1, coalesce($2, false), CASE WHEN $3 THEN $4::integer END, CASE WHEN $5 THEN $6::integer END,
    CASE WHEN $5 THEN $7::bigint END, $8)
ON CONFLICT (name) DO UPDATE SET
    paused = coalesce($2, queues.paused),
    concurrency = CASE WHEN $3 THEN $4::integer ELSE queues.concurrency END,
    rate_limit = CASE WHEN $5 THEN $6::integer ELSE queues.rate_limit END,
    rate_period = CASE WHEN $5 THEN $7::bigint ELSE queues.rate_period END,
    updated_at = $8
