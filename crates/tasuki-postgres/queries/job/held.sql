-- See tasuki_held in migrations/0007_batch_plans.sql.
SELECT tasuki_held AS "id!" FROM tasuki_held($1, $2::int8[], $3::int4[])
