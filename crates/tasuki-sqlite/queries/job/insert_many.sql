-- Jobs with no unique key. ?1: a JSON array of {"t": job_type, "p": payload, "q": queue,
-- "pr": priority, "m": max_retries, "s": scheduled_at, "c": created_at}.
INSERT INTO job_queue (job_type, payload, queue, priority, max_retries, scheduled_at, created_at)
SELECT j.value ->> '$.t', j.value -> '$.p', j.value ->> '$.q', j.value ->> '$.pr', j.value ->> '$.m',
    j.value ->> '$.s', j.value ->> '$.c'
FROM json_each(?1) AS j
