-- A new schedule starts at $3: no slot before it fires. A changed one gets a
-- new revision, so that firers holding the old definition fire nothing.
INSERT INTO schedules (name, definition, cursor, created_at)
SELECT s.name, s.definition, $3, $3 FROM unnest($1::text[], $2::text[]) AS s (name, definition)
ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, revision = schedules.revision + 1
WHERE schedules.definition <> excluded.definition
