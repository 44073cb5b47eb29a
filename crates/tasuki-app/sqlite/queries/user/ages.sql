SELECT age FROM users
WHERE (?1 IS NULL OR age >= ?1) AND (?2 IS NULL OR age <= ?2)
ORDER BY age
