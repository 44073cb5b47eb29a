//! What a worker's run loop, its attempts, heartbeats and maintenance share.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tasuki_core::{Clock, Job, JobId, Store, StoreResult};

use crate::{Registry, WorkerConfig};

pub(crate) struct Shared {
    pub(crate) config: WorkerConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The jobs this worker claimed and has not yet recorded: the leases its
    /// heartbeats renew. A job whose outcome cannot be written leaves it, so
    /// its lease expires and it is rescued.
    held: Mutex<HashSet<JobId>>,
}

impl Shared {
    pub(crate) fn new(
        config: WorkerConfig,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            config,
            store,
            registry,
            clock,
            held: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn hold(&self, jobs: &[Job]) {
        self.lock_held().extend(jobs.iter().map(|j| j.id));
    }

    pub(crate) fn let_go(&self, ids: impl IntoIterator<Item = JobId>) {
        let mut held = self.lock_held();
        for id in ids {
            held.remove(&id);
        }
    }

    /// Extends the unexpired leases of the jobs held; returns how many.
    pub(crate) async fn heartbeat(&self) -> StoreResult<u64> {
        let held: Vec<JobId> = self.lock_held().iter().copied().collect();
        let now = self.clock.now();
        let until = now.saturating_add(self.config.lease);
        self.store
            .job_heartbeat(&self.config.id, &held, now, until)
            .await
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashSet<JobId>> {
        // The set stays consistent whatever panicked while holding it.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
