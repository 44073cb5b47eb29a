-- One queue's due jobs in claim order, read from job_queue_ready alone (no
-- row is visited): a claim of several queues merges them and takes the best
-- with claim_ids.sql in the same write.
SELECT priority, scheduled_at, id FROM job_queue
WHERE queue = ?1 AND status IN ('pending', 'retry_pending') AND scheduled_at <= ?2
ORDER BY priority DESC, scheduled_at, id
LIMIT ?3
