-- The jobs of each schedule's newest $2 slots, newest first.
SELECT schedule AS "schedule!", job_id AS "job_id!"
FROM (
    SELECT schedule, job_id, row_number() OVER (PARTITION BY schedule ORDER BY slot DESC) AS n
    FROM schedule_jobs
    WHERE $1::text IS NULL OR schedule = $1
) AS recent
WHERE n <= $2
ORDER BY schedule, n
