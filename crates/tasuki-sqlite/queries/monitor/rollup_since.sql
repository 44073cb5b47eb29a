-- Summed over queues.
SELECT minute, metric, bucket, sum(count) AS count
FROM job_rollup
WHERE minute >= ?1
GROUP BY minute, metric, bucket
ORDER BY minute, metric, bucket
