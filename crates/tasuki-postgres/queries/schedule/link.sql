-- One row per job that a slot of schedule $1 enqueued.
INSERT INTO schedule_jobs (schedule, slot, job_id)
SELECT $1, * FROM unnest($2::timestamptz[], $3::int8[])
