-- Firing: the cursor moves from ?3 to ?4 only if no other firer moved it,
-- the definition is still revision ?2 and the schedule is not paused. ?5 is
-- the newest slot that enqueues a job (NULL when none does).
UPDATE schedules SET cursor = ?4, last_slot = coalesce(?5, last_slot)
WHERE name = ?1 AND revision = ?2 AND cursor = ?3 AND NOT paused
RETURNING name
