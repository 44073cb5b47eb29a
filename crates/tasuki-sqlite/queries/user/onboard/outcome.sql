-- No row when the user does not exist; `changes()` counts the delivery job
-- that onboard/delivery.sql inserted just before.
SELECT o.id AS outbox_id, u.onboarded_at IS NULL AS first_time,
    changes() AS delivery_enqueued
FROM users AS u JOIN email_outbox AS o ON o.user_id = u.id AND o.kind = :kind
WHERE u.id = :user_id
