//! Maintenance that one process at a time does for all: taking back the
//! leases of workers that died, and deleting finished jobs past retention
//! and the rollup's minutes past a day.

use std::sync::Arc;
use std::time::Duration;

use tasuki_core::LeaderParams;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

const LEADER: &str = "maintenance";
const RESCUE_BATCH: u32 = 1_000;
/// Small, so that a delete never holds many rows or the writer for long.
const PRUNE_BATCH: u32 = 500;

/// How long the rollup's minutes are kept: charts read the last hour.
const ROLLUP_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How often the leader looks for expired leases: a quarter lease, within bounds.
pub(crate) fn interval(lease: Duration) -> Duration {
    (lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(15))
}

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let every = interval(shared.config.lease);
    let owner = &*shared.config.id;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        let now_leading = round(&shared, every * 3, &stop).await;
        if now_leading != leading {
            tracing::info!(
                worker_id = owner,
                leading = now_leading,
                "maintenance leadership changed"
            );
        }
        leading = now_leading;
    }
    if leading && let Err(error) = shared.store.leader_release(LEADER, owner).await {
        tracing::warn!(worker_id = owner, error = ?error, "cannot give up the maintenance lease");
    }
}

/// Takes or renews the leader lease for `ttl`; while it is held, rescues
/// expired leases and deletes old jobs. Returns whether this worker leads.
pub(crate) async fn round(shared: &Shared, ttl: Duration, stop: &CancellationToken) -> bool {
    let lease = LeaderParams {
        name: LEADER,
        owner: &shared.config.id,
        now: shared.clock.now(),
        ttl,
    };
    match shared.store.leader_acquire(lease).await {
        Ok(true) => {
            rescue(shared).await;
            prune(shared, stop).await;
            true
        }
        Ok(false) => false,
        Err(error) => {
            tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot take the maintenance lease");
            false
        }
    }
}

async fn prune(shared: &Shared, stop: &CancellationToken) {
    let rollup_before = shared.clock.now().saturating_sub(ROLLUP_RETENTION);
    if let Err(error) = shared.store.rollup_prune(rollup_before).await {
        tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot delete old rollup minutes");
    }
    let Some(before) = shared
        .clock
        .now()
        .as_micros()
        .checked_sub(i64::try_from(shared.config.retention.as_micros()).unwrap_or(i64::MAX))
    else {
        return;
    };
    let before = tasuki_core::Timestamp::from_micros(before);
    let mut deleted = 0;
    while !stop.is_cancelled() {
        match shared.store.job_prune(before, PRUNE_BATCH).await {
            Ok(n) => {
                deleted += n;
                if n < u64::from(PRUNE_BATCH) {
                    break;
                }
                // Let claims and outcomes in between batches.
                tokio::task::yield_now().await;
            }
            Err(error) => {
                tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot delete old jobs");
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::info!(worker_id = %shared.config.id, jobs = deleted, "deleted finished jobs past retention");
    }
}

async fn rescue(shared: &Shared) {
    loop {
        match shared
            .store
            .job_rescue_expired(shared.clock.now(), RESCUE_BATCH)
            .await
        {
            Ok(ids) if ids.is_empty() => return,
            Ok(ids) => {
                tracing::warn!(worker_id = %shared.config.id, jobs = ?ids, "took back expired leases");
                if ids.len() < RESCUE_BATCH as usize {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot rescue expired leases");
                return;
            }
        }
    }
}
