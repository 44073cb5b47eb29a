-- The counts in key order, so that writers on every host lock the rows
-- they share in one order.
INSERT INTO job_rollup (minute, queue, metric, bucket, count)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::int4[], $5::int8[])
ON CONFLICT (minute, queue, metric, bucket) DO UPDATE SET count = job_rollup.count + excluded.count
