-- $4: the ids the owner still holds. Rows that another transaction holds
-- (a batch completing them, a rescue) are skipped, in id order: a heartbeat
-- never waits, so it cannot close a circle of lock waits with a batch.
UPDATE job_queue
SET lease_expires_at = $3
WHERE id IN (
    SELECT id FROM job_queue
    WHERE status = 'processing' AND lease_owner = $1 AND lease_expires_at > $2
        AND id = ANY($4)
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
