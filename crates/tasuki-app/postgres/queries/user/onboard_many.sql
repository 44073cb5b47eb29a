-- See users_onboard in postgres/migrations/0004_write_sets.sql.
SELECT user_id AS "user_id!", outbox_id
FROM users_onboard($1::int8[], $2::timestamptz[], $3::jsonb[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::text[])
