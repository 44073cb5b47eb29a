-- Jobs of which some are unique, one row per array element: a unique job
-- whose key is held (by an earlier job, or one before it in the array) is
-- not inserted, and unique_holders.sql finds the holder.
INSERT INTO job_queue (job_type, payload, queue, priority, max_retries, unique_key, unique_states,
    scheduled_at, created_at)
SELECT * FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::int4[], $5::int4[], $6::text[],
    $7::int2[], $8::timestamptz[], $9::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING id, job_type AS "job_type!", unique_key
