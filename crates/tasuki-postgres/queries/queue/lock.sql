-- A limited queue's settings, locked until the claim commits: its claimers
-- take turns, each counting what the one before it claimed.
SELECT paused, concurrency, rate_limit, rate_period FROM queues WHERE name = $1 FOR UPDATE
