UPDATE probe_runs SET ended_at = ?3 WHERE job_id = ?1 AND attempt = ?2
