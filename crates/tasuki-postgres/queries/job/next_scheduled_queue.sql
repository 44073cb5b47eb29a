-- See tasuki_next_scheduled_queue in migrations/0005_plans.sql.
SELECT tasuki_next_scheduled_queue($1) AS next
