-- At most one email of a kind per user.
INSERT INTO email_outbox (user_id, kind, recipient, subject, body, created_at)
SELECT id, :kind, email, :subject, :body, :now FROM users WHERE id = :user_id
ON CONFLICT (user_id, kind) DO NOTHING
