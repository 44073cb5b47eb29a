-- A running job stays: its worker still holds it.
DELETE FROM job_queue
WHERE id = ANY($1) AND status <> 'processing'
RETURNING id
