INSERT INTO workers (id, host, pid, queues, slots, running, started_at, heartbeat_at)
VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8)
ON CONFLICT (id) DO UPDATE SET
    host = excluded.host, pid = excluded.pid, queues = excluded.queues, slots = excluded.slots,
    running = excluded.running, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
