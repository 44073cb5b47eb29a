-- See tasuki_next_scheduled in migrations/0005_plans.sql.
SELECT tasuki_next_scheduled() AS next
