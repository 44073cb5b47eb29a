-- The user, onboarded.
UPDATE users SET onboarded_at = coalesce(onboarded_at, :now) WHERE id = :user_id
