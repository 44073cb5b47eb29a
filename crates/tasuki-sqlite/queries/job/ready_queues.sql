-- The queues that have jobs in the ready set, due or not: one seek of
-- job_queue_ready_by_queue per queue (a skip scan), whatever their depth.
WITH RECURSIVE ready(queue) AS (
    SELECT (SELECT queue FROM job_queue WHERE status IN ('pending', 'retry_pending')
            ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT queue FROM job_queue WHERE status IN ('pending', 'retry_pending')
                AND queue > ready.queue ORDER BY queue LIMIT 1)
    FROM ready WHERE ready.queue IS NOT NULL
)
SELECT queue FROM ready WHERE queue IS NOT NULL
