-- `send_email` jobs read their messages in groups, by their ids. Left to
-- choose, PostgreSQL kept the plan it made after a connection's first few
-- reads, while the outbox held a page or two: a sequential scan, which then
-- read the whole outbox at every group (about 170 scans a second of a
-- growing table at 1,000 signups/s). With sequential and bitmap scans off
-- there is one plan to make, by key at each id, and it is made once.
CREATE FUNCTION email_outbox_by_ids(p_ids int8[])
RETURNS SETOF email_outbox LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY SELECT * FROM email_outbox WHERE id = ANY (p_ids);
END
$$;
