//! What a worker's run loop, its attempts, heartbeats and maintenance share.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tasuki_core::{
    Clock, Job, JobId, Rollup, Store, StoreResult, Timestamp, WorkerInfo, WorkerQueue,
};
use tokio::sync::Notify;

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
    /// Finished attempts not yet added to the store's rollup.
    rollup: Mutex<Rollup>,
    /// Told when the rollup turns from empty to not.
    pub(crate) rollup_started: Notify,
    pub(crate) started_at: Timestamp,
}

impl Shared {
    pub(crate) fn new(
        config: WorkerConfig,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let started_at = clock.now();
        Self {
            config,
            store,
            registry,
            clock,
            held: Mutex::new(HashSet::new()),
            rollup: Mutex::new(Rollup::default()),
            rollup_started: Notify::new(),
            started_at,
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

    /// Adds finished attempts to the rollup that [`Self::flush_rollup`] writes.
    pub(crate) fn add_to_rollup(&self, add: impl FnOnce(&mut Rollup)) {
        let mut rollup = lock(&self.rollup);
        let was_empty = rollup.is_empty();
        add(&mut rollup);
        if was_empty && !rollup.is_empty() {
            self.rollup_started.notify_one();
        }
    }

    /// Writes the rollup's counts; kept for the next time if the write fails.
    pub(crate) async fn flush_rollup(&self) -> StoreResult<()> {
        let counts = lock(&self.rollup).take();
        if counts.is_empty() {
            return Ok(());
        }
        let result = self.store.rollup_add(counts.clone()).await;
        if result.is_err() {
            lock(&self.rollup).restore(counts);
        }
        result
    }

    /// Reports this process to the store: its queues, slots and jobs held.
    pub(crate) async fn beat(&self) -> StoreResult<()> {
        let queues = self
            .config
            .pools()
            .into_iter()
            .map(|(queue, slots)| WorkerQueue {
                name: queue.unwrap_or_else(|| "*".to_owned()),
                slots: u32::try_from(slots).unwrap_or(u32::MAX),
            })
            .collect();
        let info = WorkerInfo {
            id: self.config.id.to_string(),
            host: self.config.host.to_string(),
            pid: std::process::id(),
            queues,
            slots: u32::try_from(self.config.slots()).unwrap_or(u32::MAX),
            running: u32::try_from(self.lock_held().len()).unwrap_or(u32::MAX),
            started_at: self.started_at,
            heartbeat_at: self.clock.now(),
        };
        self.store.worker_beat(&info).await
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashSet<JobId>> {
        lock(&self.held)
    }
}

/// Locks a mutex whose data stays consistent whatever panicked holding it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
