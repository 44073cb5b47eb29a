UPDATE schedules SET paused = true
WHERE name = $1
RETURNING name
