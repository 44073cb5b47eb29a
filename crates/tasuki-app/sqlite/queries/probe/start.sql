INSERT INTO probe_runs (job_id, attempt, worker, started_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (job_id, attempt) DO NOTHING
