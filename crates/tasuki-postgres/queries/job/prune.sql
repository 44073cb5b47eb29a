-- Retention: finished jobs past their time go, a small batch at a time.
DELETE FROM job_queue
WHERE id IN (
    SELECT id FROM job_queue
    WHERE status IN ('completed', 'cancelled') AND completed_at < $1
    ORDER BY completed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
