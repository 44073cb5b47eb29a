-- Jobs with no unique key and ids taken beforehand (take_ids.sql): those
-- that a batch's writes enqueued, one row per array element.
INSERT INTO job_queue (id, job_type, payload, queue, priority, max_retries, scheduled_at, created_at)
OVERRIDING SYSTEM VALUE
SELECT * FROM unnest($1::int8[], $2::text[], $3::jsonb[], $4::text[], $5::int4[], $6::int4[],
    $7::timestamptz[], $8::timestamptz[])
