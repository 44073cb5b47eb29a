-- ?1: a JSON array of [name, definition], the schedules declared; the
-- others go, with their links.
DELETE FROM schedules
WHERE name NOT IN (SELECT s.value ->> '$[0]' FROM json_each(?1) AS s)
