SELECT id, user_id, kind, recipient, subject, body, sent_at FROM email_outbox WHERE id = $1
