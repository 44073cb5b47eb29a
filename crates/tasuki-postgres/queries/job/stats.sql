SELECT job_type, status, count(*) AS "count!"
FROM job_queue
GROUP BY job_type, status
