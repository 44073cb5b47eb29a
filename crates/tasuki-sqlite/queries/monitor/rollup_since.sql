SELECT minute, queue, metric, bucket, count
FROM job_rollup
WHERE minute >= ?1
ORDER BY minute, queue, metric, bucket
