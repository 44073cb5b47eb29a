-- Queues with settings or live jobs ($1: only this one, or NULL): the counts
-- come from the ready and leased partial indexes, not the whole table.
WITH waiting AS (
    SELECT queue, count(*) AS n FROM job_queue
    WHERE status IN ('pending', 'retry_pending') GROUP BY queue
), running AS (
    SELECT queue, count(*) AS n FROM job_queue WHERE status = 'processing' GROUP BY queue
), names AS (
    SELECT name FROM queues UNION SELECT queue FROM waiting UNION SELECT queue FROM running
)
SELECT names.name AS "name!", coalesce(q.paused, false) AS "paused!", q.concurrency AS "concurrency?",
    q.rate_limit AS "rate_limit?", q.rate_period AS "rate_period?",
    coalesce(w.n, 0) AS "waiting!", coalesce(r.n, 0) AS "running!"
FROM names
LEFT JOIN queues AS q ON q.name = names.name
LEFT JOIN waiting AS w ON w.queue = names.name
LEFT JOIN running AS r ON r.queue = names.name
WHERE $1::text IS NULL OR names.name = $1
ORDER BY names.name
