-- Jobs with no unique key, one row per array element; ids come from the
-- sequence in that order.
INSERT INTO job_queue (job_type, payload, queue, priority, max_retries, scheduled_at, created_at)
SELECT * FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::int4[], $5::int4[], $6::timestamptz[],
    $7::timestamptz[])
RETURNING id
