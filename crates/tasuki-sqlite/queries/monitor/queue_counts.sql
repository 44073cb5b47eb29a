-- Every queue's jobs by state, due or not as of ?1: the live ones from the
-- ready and leased partial indexes, the failed and cancelled ones from
-- `job_queue_dead`; the completed rows (most of the table) are not read.
WITH ready AS (
    SELECT queue, sum(scheduled_at <= ?1) AS waiting, sum(scheduled_at > ?1) AS scheduled,
        min(scheduled_at) FILTER (WHERE scheduled_at <= ?1) AS oldest_due
    FROM job_queue WHERE status IN ('pending', 'retry_pending') GROUP BY queue
), running AS (
    SELECT queue, count(*) AS n FROM job_queue WHERE status = 'processing' GROUP BY queue
), dead AS (
    SELECT queue, sum(status = 'failed') AS failed, sum(status = 'cancelled') AS cancelled
    FROM job_queue WHERE status IN ('failed', 'cancelled') GROUP BY queue
), names AS (
    SELECT name FROM queues UNION SELECT queue FROM ready UNION SELECT queue FROM running
    UNION SELECT queue FROM dead
)
SELECT names.name AS queue, coalesce(r.waiting, 0) AS waiting, coalesce(r.scheduled, 0) AS scheduled,
    coalesce(p.n, 0) AS running, coalesce(d.failed, 0) AS failed,
    coalesce(d.cancelled, 0) AS cancelled, r.oldest_due AS oldest_due
FROM names
LEFT JOIN ready AS r ON r.queue = names.name
LEFT JOIN running AS p ON p.queue = names.name
LEFT JOIN dead AS d ON d.queue = names.name
ORDER BY names.name
