-- The limited queues that are not paused: a claim counts before it takes
-- from them. (The claim statements leave paused queues out themselves.)
SELECT name FROM queues
WHERE NOT paused AND (concurrency IS NOT NULL OR rate_limit IS NOT NULL)
