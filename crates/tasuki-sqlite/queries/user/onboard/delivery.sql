-- Its delivery job, when the email is new (`changes()` counts the insert
-- that ran just before, onboard/email.sql).
INSERT INTO job_queue (job_type, payload, priority, max_retries, scheduled_at, created_at)
SELECT :job_type, json_object('outbox_id', last_insert_rowid()), :priority, :max_retries, :now, :now
WHERE changes() = 1
