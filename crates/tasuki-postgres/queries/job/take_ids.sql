-- Ids for jobs to be inserted later in the transaction, from the sequence
-- that numbers the others.
SELECT nextval(pg_get_serial_sequence('job_queue', 'id')) AS "id!"
FROM generate_series(1, $1::int4)
