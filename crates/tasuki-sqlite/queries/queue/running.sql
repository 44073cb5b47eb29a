SELECT count(*) AS running FROM job_queue WHERE status = 'processing' AND queue = ?1
