UPDATE users SET onboarded_at = $2 WHERE id = $1 AND onboarded_at IS NULL
