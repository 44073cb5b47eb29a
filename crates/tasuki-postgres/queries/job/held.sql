-- The jobs whose attempt still holds an unexpired lease, locked in id order
-- until the transaction that completes them commits: a rescue or a
-- heartbeat skips them meanwhile, and the attempt's writes commit only with
-- its completion.
SELECT j.id
FROM job_queue AS j JOIN unnest($2::int8[], $3::int4[]) AS c (id, attempt)
    ON j.id = c.id AND j.attempt = c.attempt
WHERE j.status = 'processing' AND j.lease_expires_at > $1
ORDER BY j.id
FOR UPDATE OF j
