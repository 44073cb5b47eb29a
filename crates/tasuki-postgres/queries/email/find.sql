SELECT id FROM email_outbox WHERE user_id = $1 AND kind = $2
