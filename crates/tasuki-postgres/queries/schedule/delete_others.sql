-- $1: the names declared; the others go, with their links.
DELETE FROM schedules
WHERE name <> ALL ($1::text[])
