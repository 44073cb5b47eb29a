//! The scheduler every worker process runs beside its jobs: it fires the
//! slots that are due, then sleeps until the next one.
//!
//! Any number of processes run it at once, on any hosts: a slot fires in
//! one conditional write that only one of them wins
//! (`tasuki_core::fire_due`), so it needs no leader, and a process that
//! dies or restarts loses nothing (what fired is in the database).

use std::sync::Arc;

use tasuki_core::{FiredSlots, StoreResult, fire_due};
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    // Schedules that another process syncs or resumes, and a clock that
    // jumps, are seen within the idle wait.
    let longest = shared.config.idle_wait;
    loop {
        let wait = match round(&shared).await {
            Ok(fired) => fired
                .next
                .map_or(longest, |next| next.since(shared.clock.now()).min(longest)),
            Err(error) => {
                tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot fire schedules");
                longest
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Fires every slot due now, its jobs checked by the registry like every
/// other enqueue (their type's queue and retries), and says so in the log. A schedule of a type this process
/// does not know is left to the processes that do.
pub(crate) async fn round(shared: &Shared) -> StoreResult<FiredSlots> {
    let fired = fire_due(&*shared.store, shared.clock.now(), Some(&*shared.registry)).await?;
    for (name, ids) in &fired.jobs {
        tracing::info!(worker_id = %shared.config.id, schedule = %name, jobs = ?ids, "schedule fired");
    }
    for (name, error) in &fired.refused {
        tracing::warn!(worker_id = %shared.config.id, schedule = %name, error = %error, "schedule not fired here: its job was refused");
    }
    Ok(fired)
}
