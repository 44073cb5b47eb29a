-- ?1: a JSON array of ids. A running job stays: its worker still holds it.
DELETE FROM job_queue
WHERE id IN (SELECT value FROM json_each(?1)) AND status <> 'processing'
RETURNING id
