-- A `user_created` job's writes are the statements of this folder, run in
-- the transaction that completes the job. First the profile; no row changes
-- when the user does not exist. A second job for the same user replaces it.
INSERT INTO user_profiles (user_id, recommendation_tags, region, rank, updated_at)
SELECT id, :tags, :region, :rank, :now FROM users WHERE id = :user_id
ON CONFLICT (user_id) DO UPDATE SET
    recommendation_tags = excluded.recommendation_tags, region = excluded.region,
    rank = excluded.rank, updated_at = excluded.updated_at
