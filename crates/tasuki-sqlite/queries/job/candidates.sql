-- One band's due jobs (queue ?1, priority ?2), oldest due first, read from
-- job_queue_ready_by_queue alone (no row is visited): a claim of several
-- bands merges them and takes the best with claim_ids.sql in the same write.
SELECT scheduled_at, id FROM job_queue
WHERE queue = ?1 AND priority = ?2 AND status IN ('pending', 'retry_pending')
    AND scheduled_at <= ?3
ORDER BY scheduled_at, id
LIMIT ?4
