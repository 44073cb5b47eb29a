-- The jobs whose attempt still holds an unexpired lease, locked until the
-- transaction that completes them commits: a rescue waits for it, then
-- finds them completed.
SELECT j.id
FROM job_queue AS j JOIN unnest($2::int8[], $3::int4[]) AS c (id, attempt)
    ON j.id = c.id AND j.attempt = c.attempt
WHERE j.status = 'processing' AND j.lease_expires_at > $1
FOR UPDATE OF j
