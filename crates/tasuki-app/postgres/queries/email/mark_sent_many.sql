-- See email_outbox_mark_sent in postgres/migrations/0004_write_sets.sql.
SELECT email_outbox_mark_sent($1::int8[], $2::timestamptz[]) AS "sent!"
