SELECT min(scheduled_at) AS next
FROM job_queue
WHERE queue = $1 AND status IN ('pending', 'retry_pending')
    AND NOT EXISTS (SELECT 1 FROM queues WHERE name = $1 AND paused)
