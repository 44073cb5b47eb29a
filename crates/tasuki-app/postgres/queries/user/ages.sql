SELECT age FROM users
WHERE ($1::int8 IS NULL OR age >= $1) AND ($2::int8 IS NULL OR age <= $2)
ORDER BY age
