-- Taken when free or expired, renewed by its owner; no row back means another holds it.
INSERT INTO leader_leases (name, owner, expires_at)
VALUES ($1, $2, $4)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE leader_leases.owner = excluded.owner OR leader_leases.expires_at <= $3
RETURNING owner
