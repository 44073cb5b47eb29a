UPDATE schedules SET paused = 1
WHERE name = ?1
RETURNING name
