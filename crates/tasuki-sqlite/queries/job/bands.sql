-- The priorities at which one queue (?1) has jobs in the ready set, due or
-- not, highest first: one seek of job_queue_ready_by_queue each (a skip
-- scan). A claim reads each band as a range that stops at its first job not
-- yet due, so jobs scheduled for later cost it nothing.
WITH RECURSIVE band(priority) AS (
    SELECT (SELECT max(priority) FROM job_queue
            WHERE queue = ?1 AND status IN ('pending', 'retry_pending'))
    UNION ALL
    SELECT (SELECT max(priority) FROM job_queue
            WHERE queue = ?1 AND status IN ('pending', 'retry_pending') AND priority < band.priority)
    FROM band WHERE band.priority IS NOT NULL
)
SELECT priority FROM band WHERE priority IS NOT NULL
