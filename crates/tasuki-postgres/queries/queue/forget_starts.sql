DELETE FROM queue_starts WHERE queue = $1 AND started_at <= $2
