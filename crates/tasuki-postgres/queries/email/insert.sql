-- At most one email of a kind per user: a second run inserts nothing.
INSERT INTO email_outbox (user_id, kind, recipient, subject, body, created_at)
SELECT id, $2, email, $3, $4, $5 FROM users WHERE id = $1
ON CONFLICT (user_id, kind) DO NOTHING
RETURNING id
