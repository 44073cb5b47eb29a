//! The worker: claims due jobs in batches sized to its free slots, runs them
//! concurrently under leases kept alive by heartbeats, writes their outcomes
//! in batches, and stops gracefully.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tasuki_core::{ClaimParams, Clock, Job, JobId, Release, Store, StoreError};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::run::Outcome;
use crate::shared::Shared;
use crate::{Registry, WorkerConfig};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the store failed")]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Worker {
    shared: Arc<Shared>,
}

impl Worker {
    pub fn new(
        config: WorkerConfig,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared::new(config, store, registry, clock)),
        }
    }

    /// One step, for tests and tools: claims up to `concurrency` due jobs,
    /// runs them all, writes their outcomes; returns how many ran.
    pub async fn run_once(&self) -> Result<usize, WorkerError> {
        let jobs = self.claim(self.shared.config.concurrency).await?;
        let count = jobs.len();
        let mut running = JoinSet::new();
        for job in jobs {
            let shared = self.shared.clone();
            running.spawn(async move { shared.execute(job).await });
        }
        let outcomes = running.join_all().await;
        self.shared.record(outcomes).await;
        Ok(count)
    }

    /// One maintenance round, for tests and tools: when this worker holds or
    /// takes the leader lease, takes back expired leases and deletes finished
    /// jobs past retention. Returns whether it led.
    pub async fn maintain_once(&self) -> bool {
        let ttl = crate::maintenance::interval(self.shared.config.lease) * 3;
        crate::maintenance::round(&self.shared, ttl, &CancellationToken::new()).await
    }

    /// One heartbeat, for tests and tools: renews the leases this worker
    /// still holds; returns how many it renewed.
    pub async fn heartbeat_once(&self) -> Result<u64, WorkerError> {
        Ok(self.shared.heartbeat().await?)
    }

    /// Steps until no job is due; returns how many ran.
    pub async fn drain(&self) -> Result<usize, WorkerError> {
        let mut total = 0;
        loop {
            match self.run_once().await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let now = self.shared.clock.now();
        let jobs = self
            .shared
            .store
            .job_claim(ClaimParams {
                owner: &self.shared.config.id,
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
                now,
                lease_expires_at: now.saturating_add(self.shared.config.lease),
            })
            .await?;
        self.shared.hold(&jobs);
        Ok(jobs)
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets in-flight
    /// jobs finish within the shutdown timeout and hands the rest back
    /// without spending a retry.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let shared = &self.shared;
        let config = &shared.config;
        tracing::info!(worker_id = %config.id, concurrency = config.concurrency, "worker started");
        let background = CancellationToken::new();
        let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record_loop(shared.clone(), outcomes_rx));
        let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), background.clone()));
        let maintenance = tokio::spawn(crate::maintenance::run(shared.clone(), background.clone()));

        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let mut running: JoinSet<(JobId, i32)> = JoinSet::new();
        let mut in_flight: HashSet<(JobId, i32)> = HashSet::new();
        let mut store_errors = 0u32;
        loop {
            while let Some(done) = running.try_join_next() {
                if let Ok(attempt) = done {
                    in_flight.remove(&attempt);
                }
            }
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = shutdown.cancelled() => break,
            };
            let mut permits = vec![first];
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                permits.push(permit);
            }
            let jobs = match self.claim(permits.len()).await {
                Ok(jobs) => {
                    store_errors = 0;
                    jobs
                }
                Err(error) => {
                    store_errors += 1;
                    tracing::error!(worker_id = %config.id, error = ?error, "cannot claim jobs");
                    drop(permits);
                    let pause = Duration::from_millis(50 * 2u64.pow(store_errors.min(6)));
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            };
            if jobs.is_empty() {
                drop(permits);
                let wait = self.idle_wait().await;
                tokio::select! {
                    () = shared.store.job_wait_for_change(wait) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
            for (job, permit) in jobs.into_iter().zip(permits) {
                let attempt = (job.id, job.attempt);
                in_flight.insert(attempt);
                let (shared, outcomes) = (shared.clone(), outcomes.clone());
                running.spawn(async move {
                    let outcome = shared.execute(job).await;
                    drop(permit);
                    // The recorder outlives every job task.
                    let _ = outcomes.send(outcome);
                    attempt
                });
            }
        }

        tracing::info!(worker_id = %config.id, in_flight = in_flight.len(), "worker stopping");
        let finish = async {
            while let Some(done) = running.join_next().await {
                if let Ok(attempt) = done {
                    in_flight.remove(&attempt);
                }
            }
        };
        if tokio::time::timeout(config.shutdown_timeout, finish)
            .await
            .is_err()
        {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        drop(outcomes);
        let _ = recorder.await;
        // Heartbeats stop before the hand-back: if it fails, the leases
        // expire and the jobs are rescued.
        background.cancel();
        let _ = tokio::join!(heartbeat, maintenance);
        let releases: Vec<Release> = in_flight
            .into_iter()
            .map(|(id, attempt)| Release { id, attempt })
            .collect();
        if !releases.is_empty() {
            let released = shared
                .store
                .job_release_many(shared.clock.now(), releases)
                .await?;
            tracing::warn!(worker_id = %config.id, jobs = ?released, "jobs still running at the shutdown timeout were handed back");
        }
        tracing::info!(worker_id = %config.id, "worker stopped");
        Ok(())
    }

    /// How long to sleep with nothing due: until the next scheduled job, at most `idle_wait`.
    async fn idle_wait(&self) -> Duration {
        let max = self.shared.config.idle_wait;
        match self.shared.store.job_next_scheduled_at().await {
            Ok(Some(next)) => next.since(self.shared.clock.now()).min(max),
            Ok(None) => max,
            Err(error) => {
                tracing::warn!(worker_id = %self.shared.config.id, error = ?error, "cannot read the schedule");
                max
            }
        }
    }
}

/// How many batches of outcomes are written at once. On PostgreSQL each is
/// a transaction of its own on the bookkeeping pool, so the round trips of
/// jobs' writes overlap as far as the pool has connections; on SQLite they
/// share the writer's turns.
const RECORDERS: usize = 4;

/// Writes outcomes as they come, in batches of whatever arrived meanwhile,
/// up to [`RECORDERS`] batches at once.
async fn record_loop(shared: Arc<Shared>, mut outcomes: mpsc::UnboundedReceiver<Outcome>) {
    let mut recording = JoinSet::new();
    let mut batch = Vec::new();
    loop {
        if recording.len() >= RECORDERS {
            recording.join_next().await;
            continue;
        }
        tokio::select! {
            received = outcomes.recv_many(&mut batch, 4_096) => {
                if received == 0 {
                    break;
                }
                let (shared, batch) = (shared.clone(), std::mem::take(&mut batch));
                recording.spawn(async move { shared.record(batch).await });
            }
            Some(_) = recording.join_next(), if !recording.is_empty() => {}
        }
    }
    while recording.join_next().await.is_some() {}
}

async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(error) = shared.heartbeat().await {
            tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot renew leases");
        }
    }
}
