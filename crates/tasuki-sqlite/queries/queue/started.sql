-- Jobs started in the window that ends now (?2 is its start, excluded).
SELECT coalesce(sum(jobs), 0) AS started FROM queue_starts WHERE queue = ?1 AND started_at > ?2
