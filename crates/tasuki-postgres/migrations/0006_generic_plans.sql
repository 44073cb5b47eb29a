-- Claims keep one plan per connection. PostgreSQL plans a statement with
-- parameters anew at each call for as long as its plan for unknown values
-- looks dearer than the plans made for the values at hand, and a claim's
-- plan for an unknown LIMIT always did: with WORKER_COUNT 3 every claim was
-- planned again, and planning cost more than the claim itself
-- (BENCHMARKS.md). The claims' settings (0005) leave them one plan, so the
-- generic plan is the plan that each call would make.
ALTER FUNCTION tasuki_claim(text, timestamptz, timestamptz, bigint)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasuki_claim_queue(text, timestamptz, timestamptz, bigint, text, boolean)
    SET plan_cache_mode = force_generic_plan;
