-- ?2: a JSON array of [slot, job id], one per job a slot of schedule ?1 enqueued.
INSERT INTO schedule_jobs (schedule, slot, job_id)
SELECT ?1, l.value ->> '$[0]', l.value ->> '$[1]'
FROM json_each(?2) AS l
