//! What a worker's run loop, its attempts, heartbeats and maintenance share.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tasuki_core::{Clock, Job, JobId, Store};

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

    pub(crate) fn held(&self) -> Vec<JobId> {
        self.lock_held().iter().copied().collect()
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashSet<JobId>> {
        // The set stays consistent whatever panicked while holding it.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
