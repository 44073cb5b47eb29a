INSERT INTO job_rollup (minute, queue, metric, bucket, count)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (minute, queue, metric, bucket) DO UPDATE SET count = count + excluded.count
