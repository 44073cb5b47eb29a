SELECT id, email, age, name, bio, is_active, additional_data, created_at
FROM users
WHERE id > ?1
ORDER BY id
LIMIT ?2
