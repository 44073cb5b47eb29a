INSERT INTO users (email, age, name, bio, is_active, additional_data, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, email, age, name, bio, is_active, additional_data, created_at
