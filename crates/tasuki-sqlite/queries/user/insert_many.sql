-- ?1: a JSON array of {"email", "age", "name", "bio", "is_active", "additional_data", "created_at"}.
-- A taken email inserts nothing, whether taken before or earlier in the batch.
INSERT INTO users (email, age, name, bio, is_active, additional_data, created_at)
SELECT u.value ->> '$.email', u.value ->> '$.age', u.value ->> '$.name', u.value ->> '$.bio',
    u.value ->> '$.is_active', u.value ->> '$.additional_data', u.value ->> '$.created_at'
FROM json_each(?1) AS u
WHERE true
ON CONFLICT (email) DO NOTHING
RETURNING id AS "id!", email AS "email!", age AS "age!", name, bio, is_active AS "is_active!",
    additional_data, created_at AS "created_at!"
