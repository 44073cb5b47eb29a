-- One row per array element; ids come from the sequence in that order.
INSERT INTO job_queue (job_type, payload, priority, max_retries, scheduled_at, created_at)
SELECT * FROM unnest($1::text[], $2::jsonb[], $3::int4[], $4::int4[], $5::timestamptz[], $6::timestamptz[])
RETURNING id
