-- Wakes idle workers on every host, as the insert trigger does.
SELECT pg_notify('tasuki_jobs', current_schema())
