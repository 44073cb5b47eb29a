-- $4: the ids the owner still holds.
UPDATE job_queue
SET lease_expires_at = $3
WHERE status = 'processing' AND lease_owner = $1 AND lease_expires_at > $2 AND id = ANY($4)
