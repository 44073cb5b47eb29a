//! The store side of schedules: what every backend keeps and does for them.
//!
//! A schedule's row holds its definition (as the last process to start with
//! a schedules file synced it), its revision, its cursor (every slot at or
//! before it is done with) and whether it is paused; each job a slot
//! enqueued is linked to it with its slot. Firing is one conditional write
//! ([`Fire`]): the cursor moves and the jobs are inserted in one
//! transaction, or nothing happens, so each slot fires once however many
//! processes try.

use async_trait::async_trait;

use crate::{Fire, JobCheck, JobId, Schedule, StoreResult, StoredSchedule, Timestamp};

/// Which schedules to list, and how many of each one's newest jobs.
#[derive(Clone, Debug, Default)]
pub struct ScheduleQuery {
    /// Only this one (none: every schedule, by name).
    pub name: Option<String>,
    pub recent_jobs: u32,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Makes the stored schedules exactly `schedules`, in one transaction: a
    /// new one starts with its cursor at `now` (no slot before it fires); a
    /// changed one gets the new definition and a new revision, and keeps its
    /// cursor and pause; one no longer declared is deleted.
    async fn schedule_sync(&self, schedules: &[Schedule], now: Timestamp) -> StoreResult<()>;
    /// The schedules, by name; `NotFound` when `query.name` names none.
    async fn schedule_list(&self, query: ScheduleQuery) -> StoreResult<Vec<StoredSchedule>>;
    /// Fires slots if the schedule is still as `fire` read it: the ids of
    /// the jobs enqueued (oldest slot first), or `None` when another firer
    /// got there first, the schedule changed or it is paused.
    async fn schedule_fire(&self, fire: Fire) -> StoreResult<Option<Vec<JobId>>>;
    /// Stops firing; `NotFound` for an unknown name.
    async fn schedule_pause(&self, name: &str) -> StoreResult<()>;
    /// Fires again from `now` on: the slots that passed while it was paused
    /// stay unfired. `NotFound` for an unknown name.
    async fn schedule_resume(&self, name: &str, now: Timestamp) -> StoreResult<()>;
}

/// What one pass over the schedules fired.
#[derive(Debug, Default)]
pub struct FiredSlots {
    /// Each schedule that enqueued jobs in this pass, with their ids.
    pub jobs: Vec<(String, Vec<JobId>)>,
    /// Each schedule whose due jobs the check refused, with why; it stays
    /// due, for a process that knows its job type.
    pub refused: Vec<(String, String)>,
    /// The earliest slot still to come of any unpaused schedule but those
    /// refused.
    pub next: Option<Timestamp>,
}

/// Fires every slot due at `now` of every schedule, as its missed-slot
/// policy says: what each process's scheduler does at each wake-up. A fire
/// that another process got to first is read again, in case slots it did
/// not see are still due. `check` (a worker's registry) checks each job and
/// fills in what its type says (queue, retries), as for every other enqueue;
/// a schedule's jobs carry no unique key, as each slot fires once.
pub async fn fire_due(
    store: &(impl ScheduleStore + ?Sized),
    now: Timestamp,
    check: Option<&dyn JobCheck>,
) -> StoreResult<FiredSlots> {
    let mut fired = FiredSlots::default();
    loop {
        let schedules = store.schedule_list(ScheduleQuery::default()).await?;
        let mut lost = false;
        for stored in &schedules {
            let Some(mut fire) = stored.due(now) else {
                continue;
            };
            let name = &stored.schedule.name;
            if let Some(check) = check
                && let Err(error) = fire.jobs.iter_mut().try_for_each(|(_, job)| {
                    check.check(job)?;
                    // One job per slot is the schedule's own rule; a key
                    // derived from the firing time would make the slots of a
                    // catch-up one job.
                    job.unique = None;
                    Ok(())
                })
            {
                if fired.refused.iter().all(|(refused, _)| refused != name) {
                    fired.refused.push((name.clone(), error));
                }
                continue;
            }
            match store.schedule_fire(fire).await? {
                Some(ids) if !ids.is_empty() => {
                    fired.jobs.push((stored.schedule.name.clone(), ids));
                }
                Some(_) => {}
                None => lost = true,
            }
        }
        if !lost {
            fired.next = schedules
                .iter()
                .filter(|s| {
                    fired
                        .refused
                        .iter()
                        .all(|(name, _)| *name != s.schedule.name)
                })
                .filter_map(|s| s.next_run(now))
                .min();
            return Ok(fired);
        }
    }
}
