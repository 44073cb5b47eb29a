-- The jobs that hold these unique keys of these types: the predicate is
-- job_queue_unique's.
SELECT id, job_type AS "job_type!", unique_key AS "unique_key!"
FROM job_queue
WHERE (job_type, unique_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
    AND unique_key IS NOT NULL AND (unique_states & CASE status
        WHEN 'pending' THEN 1 WHEN 'processing' THEN 2 WHEN 'retry_pending' THEN 4
        WHEN 'completed' THEN 8 WHEN 'failed' THEN 16 ELSE 32 END) <> 0
