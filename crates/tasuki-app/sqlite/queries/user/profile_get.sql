SELECT recommendation_tags, region, rank FROM user_profiles WHERE user_id = ?1
