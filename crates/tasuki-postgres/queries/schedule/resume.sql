-- The slots that passed while paused are done with: the cursor moves to $2.
UPDATE schedules SET paused = false, cursor = CASE WHEN paused THEN greatest(cursor, $2) ELSE cursor END
WHERE name = $1
RETURNING name
