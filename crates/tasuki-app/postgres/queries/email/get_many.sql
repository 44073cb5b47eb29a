-- See email_outbox_by_ids in postgres/migrations/0003_email_reads.sql.
SELECT id AS "id!", user_id AS "user_id!", kind AS "kind!", recipient AS "recipient!",
    subject AS "subject!", body AS "body!", sent_at
FROM email_outbox_by_ids($1::int8[])
