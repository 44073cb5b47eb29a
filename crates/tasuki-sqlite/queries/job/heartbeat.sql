-- ?4: a JSON array of the ids the owner still holds.
UPDATE job_queue
SET lease_expires_at = ?3
WHERE status = 'processing' AND lease_owner = ?1 AND lease_expires_at > ?2
    AND id IN (SELECT value FROM json_each(?4))
