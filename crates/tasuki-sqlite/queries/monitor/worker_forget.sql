-- Processes silent since ?1.
DELETE FROM workers WHERE heartbeat_at < ?1
