DELETE FROM job_rollup WHERE minute < ?1
