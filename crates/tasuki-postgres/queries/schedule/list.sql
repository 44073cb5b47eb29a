SELECT name, definition, revision, cursor, last_slot, paused
FROM schedules
WHERE $1::text IS NULL OR name = $1
ORDER BY name
