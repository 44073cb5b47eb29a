-- The user, onboarded.
UPDATE users SET onboarded_at = :now WHERE id = :user_id AND onboarded_at IS NULL
