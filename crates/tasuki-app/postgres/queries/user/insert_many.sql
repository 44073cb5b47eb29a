-- One row per array element. A taken email inserts nothing, whether taken
-- before or earlier in the batch.
INSERT INTO users (email, age, name, bio, is_active, additional_data, created_at)
SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::bool[], $6::jsonb[],
    $7::timestamptz[])
ON CONFLICT (email) DO NOTHING
RETURNING id, email, age, name, bio, is_active, additional_data, created_at
