UPDATE email_outbox SET status = 'sent', sent_at = ?2 WHERE id = ?1 AND status = 'pending'
