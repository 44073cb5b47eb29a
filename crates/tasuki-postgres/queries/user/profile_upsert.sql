INSERT INTO user_profiles (user_id, recommendation_tags, region, rank, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id) DO UPDATE SET
    recommendation_tags = excluded.recommendation_tags, region = excluded.region,
    rank = excluded.rank, updated_at = excluded.updated_at
