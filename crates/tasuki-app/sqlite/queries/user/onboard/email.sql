-- One welcome email per user: it leaves the database, so a second job for
-- the same user adds none (and no row comes back).
INSERT INTO email_outbox (user_id, kind, recipient, subject, body, created_at)
SELECT id, :kind, email, :subject, :body, :now FROM users WHERE id = :user_id
ON CONFLICT (user_id, kind) DO NOTHING
RETURNING id
