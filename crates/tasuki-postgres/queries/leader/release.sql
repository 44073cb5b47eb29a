DELETE FROM leader_leases WHERE name = $1 AND owner = $2
