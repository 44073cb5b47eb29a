-- The jobs of each schedule's newest ?2 slots, newest first.
SELECT schedule, job_id
FROM (
    SELECT schedule, job_id, row_number() OVER (PARTITION BY schedule ORDER BY slot DESC) AS n
    FROM schedule_jobs
    WHERE ?1 IS NULL OR schedule = ?1
)
WHERE n <= ?2
ORDER BY schedule, n
