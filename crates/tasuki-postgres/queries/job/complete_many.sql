-- See tasuki_complete in migrations/0007_batch_plans.sql.
SELECT tasuki_complete AS "id!" FROM tasuki_complete($1, $2::int8[], $3::int4[], $4::jsonb[])
