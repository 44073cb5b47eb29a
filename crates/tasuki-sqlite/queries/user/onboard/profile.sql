-- The profile follows the latest run.
INSERT INTO user_profiles (user_id, recommendation_tags, region, rank, updated_at)
SELECT id, :tags, :region, :rank, :now FROM users WHERE id = :user_id
ON CONFLICT (user_id) DO UPDATE SET
    recommendation_tags = excluded.recommendation_tags, region = excluded.region,
    rank = excluded.rank, updated_at = excluded.updated_at
