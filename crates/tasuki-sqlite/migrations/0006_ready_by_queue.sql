-- One ready index, by queue. A claim of every queue walks it queue by queue
-- (job/ready_queues.sql), so the second index in claim order that every
-- enqueue and claim kept up is gone.
DROP INDEX job_queue_ready;
DROP INDEX job_queue_ready_by_queue;
CREATE INDEX job_queue_ready ON job_queue (queue, priority DESC, scheduled_at, id)
    WHERE status IN ('pending', 'retry_pending');
