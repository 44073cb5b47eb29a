-- One ready index: `job_queue_ready_by_queue`. A claim walks it by queue and
-- priority (job/ready_queues.sql, job/bands.sql), so the second index in
-- claim order across queues, which every enqueue and claim kept up, is gone.
DROP INDEX job_queue_ready;
