SELECT min(scheduled_at) AS next
FROM job_queue
WHERE status IN ('pending', 'retry_pending')
    AND queue NOT IN (SELECT name FROM queues WHERE paused)
