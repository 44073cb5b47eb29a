-- ?1: a JSON array of [name, definition]. A new schedule starts at ?2: no
-- slot before it fires. A changed one gets a new revision, so that firers
-- holding the old definition fire nothing.
INSERT INTO schedules (name, definition, cursor, created_at)
SELECT s.value ->> '$[0]', s.value ->> '$[1]', ?2, ?2 FROM json_each(?1) AS s
WHERE true -- an upsert from a SELECT needs a WHERE, or SQLite reads ON as a join's
ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, revision = schedules.revision + 1
WHERE schedules.definition <> excluded.definition
