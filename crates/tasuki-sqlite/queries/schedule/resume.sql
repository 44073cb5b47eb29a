-- The slots that passed while paused are done with: the cursor moves to ?2.
UPDATE schedules SET paused = 0, cursor = CASE WHEN paused THEN max(cursor, ?2) ELSE cursor END
WHERE name = ?1
RETURNING name
