SELECT id, host, pid, queues::text AS "queues!", slots, running, started_at, heartbeat_at
FROM workers
WHERE heartbeat_at >= $1
ORDER BY id
