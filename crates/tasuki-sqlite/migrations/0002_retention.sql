-- Finished jobs by age, for retention.
CREATE INDEX job_queue_finished ON job_queue (completed_at)
    WHERE status IN ('completed', 'cancelled');
