-- The writes of a batch's `user_created` and `send_email` jobs, each kind
-- in one statement (`tasuki_postgres::set_writes`): 64 onboardings in one
-- statement cost under a third of the CPU of 64 statements, 64 mark-sents
-- under a fifth (bench/pg-statements). Functions for the reason 0003 gives:
-- one plan, by key, whatever the tables held when a connection first ran
-- them.

-- `queries/user/onboard.sql` for many users: each user onboarded, its
-- profile, and one welcome email per user, with the email's id (NULL when
-- the user had its welcome email already). A user that does not exist has
-- no row. Each user at most once: a profile cannot be written twice in one
-- statement.
CREATE FUNCTION users_onboard(
    p_user_ids int8[], p_at timestamptz[], p_tags jsonb[], p_regions text[],
    p_ranks text[], p_kinds text[], p_subjects text[], p_bodies text[]
)
RETURNS TABLE (user_id int8, outbox_id int8) LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(p_user_ids, p_at, p_tags, p_regions, p_ranks, p_kinds, p_subjects, p_bodies)
            AS t (user_id, at, tags, region, rank, kind, subject, body)
    ), u AS (
        UPDATE users SET onboarded_at = coalesce(users.onboarded_at, input.at)
        FROM input WHERE users.id = input.user_id
        RETURNING users.id, users.email
    ), profile AS (
        INSERT INTO user_profiles (user_id, recommendation_tags, region, rank, updated_at)
        SELECT u.id, input.tags, input.region, input.rank, input.at
        FROM u JOIN input ON input.user_id = u.id
        ON CONFLICT (user_id) DO UPDATE SET
            recommendation_tags = excluded.recommendation_tags, region = excluded.region,
            rank = excluded.rank, updated_at = excluded.updated_at
    ), email AS (
        INSERT INTO email_outbox (user_id, kind, recipient, subject, body, created_at)
        SELECT u.id, input.kind, u.email, input.subject, input.body, input.at
        FROM u JOIN input ON input.user_id = u.id
        ON CONFLICT (user_id, kind) DO NOTHING
        RETURNING email_outbox.id, email_outbox.user_id
    )
    SELECT u.id, email.id FROM u LEFT JOIN email ON email.user_id = u.id;
END
$$;

-- `queries/email/mark_sent.sql` for many emails; how many were pending. An
-- email named twice is sent at its first time, as one by one.
CREATE FUNCTION email_outbox_mark_sent(p_ids int8[], p_at timestamptz[])
RETURNS int8 LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    sent int8;
BEGIN
    UPDATE email_outbox SET status = 'sent', sent_at = t.at
    FROM (
        SELECT DISTINCT ON (id) id, at
        FROM unnest(p_ids, p_at) WITH ORDINALITY AS u (id, at, n)
        ORDER BY id, n
    ) AS t
    WHERE email_outbox.id = t.id AND email_outbox.status = 'pending';
    GET DIAGNOSTICS sent = ROW_COUNT;
    RETURN sent;
END
$$;
