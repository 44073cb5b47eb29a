SELECT min(scheduled_at) AS oldest
FROM job_queue
WHERE status IN ('pending', 'retry_pending') AND scheduled_at <= $1
