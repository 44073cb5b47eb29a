//! Maintenance that one process at a time does for all: taking back the
//! leases of workers that died.

use std::sync::Arc;
use std::time::Duration;

use tasuki_core::LeaderParams;
use tokio_util::sync::CancellationToken;

use crate::worker::Shared;

const LEADER: &str = "maintenance";
const RESCUE_BATCH: u32 = 1_000;

/// How often the leader looks for expired leases: a quarter lease, within bounds.
fn interval(lease: Duration) -> Duration {
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
        let lease = LeaderParams {
            name: LEADER,
            owner,
            now: shared.clock.now(),
            ttl: every * 3,
        };
        match shared.store.leader_acquire(lease).await {
            Ok(now_leading) => {
                if now_leading != leading {
                    tracing::info!(
                        worker_id = owner,
                        leading = now_leading,
                        "maintenance leadership changed"
                    );
                }
                leading = now_leading;
            }
            Err(error) => {
                tracing::warn!(worker_id = owner, error = ?error, "cannot take the maintenance lease");
                leading = false;
            }
        }
        if leading {
            rescue(&shared).await;
        }
    }
    if leading && let Err(error) = shared.store.leader_release(LEADER, owner).await {
        tracing::warn!(worker_id = owner, error = ?error, "cannot give up the maintenance lease");
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
