//! The worker: claims due jobs in batches sized to its free slots, runs them
//! concurrently under leases kept alive by heartbeats, writes their outcomes
//! in batches, fires schedules, and stops gracefully.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tasuki_core::{ClaimParams, Clock, FiredSlots, Job, JobId, Release, Store, StoreError};
use tokio::sync::mpsc;
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

    /// One step, for tests and tools: claims as many due jobs as each of
    /// its queues has slots, runs them all, writes their outcomes; returns
    /// how many ran.
    pub async fn run_once(&self) -> Result<usize, WorkerError> {
        let mut jobs = Vec::new();
        for (queue, slots) in self.shared.config.pools() {
            jobs.extend(self.claim(queue.as_deref(), slots).await?);
        }
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

    /// One pass of the scheduler, for tests and tools: fires every slot of
    /// every schedule that is due now.
    pub async fn schedule_once(&self) -> Result<FiredSlots, WorkerError> {
        Ok(crate::scheduler::round(&self.shared).await?)
    }

    /// One heartbeat, for tests and tools: renews the leases this worker
    /// still holds; returns how many it renewed.
    pub async fn heartbeat_once(&self) -> Result<u64, WorkerError> {
        Ok(self.shared.heartbeat().await?)
    }

    /// One report, for tests and tools: writes the rollup of the attempts
    /// recorded so far and this process's heartbeat row.
    pub async fn report_once(&self) -> Result<(), WorkerError> {
        self.shared.flush_rollup().await?;
        Ok(self.shared.beat().await?)
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

    async fn claim(&self, queue: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        let now = self.shared.clock.now();
        let jobs = self
            .shared
            .store
            .job_claim(ClaimParams {
                owner: &self.shared.config.id,
                queue,
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
    ///
    /// Each pool of slots (a queue of `QUEUES`, or every queue) claims up to
    /// its free slots. With nothing due in any pool that has a free slot, the
    /// worker sleeps until the store sees a change, a job of a full pool
    /// finishes, or the next scheduled job is due.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let shared = &self.shared;
        let config = &shared.config;
        let mut pools: Vec<Pool> = config
            .pools()
            .into_iter()
            .map(|(queue, free)| Pool { queue, free })
            .collect();
        tracing::info!(worker_id = %config.id, slots = config.slots(), queues = ?pools.iter().map(|p| p.queue.as_deref().unwrap_or("*")).collect::<Vec<_>>(), "worker started");
        let background = CancellationToken::new();
        let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record_loop(shared.clone(), outcomes_rx));
        let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), background.clone()));
        let maintenance = tokio::spawn(crate::maintenance::run(shared.clone(), background.clone()));
        let scheduler = tokio::spawn(crate::scheduler::run(shared.clone(), background.clone()));
        let rollup = tokio::spawn(rollup_loop(shared.clone(), background.clone()));

        let mut running: JoinSet<()> = JoinSet::new();
        // Each task's pool and attempt, by task: a task that panics or is
        // aborted still gives its slot back.
        let mut in_flight: HashMap<tokio::task::Id, (usize, (JobId, i32))> = HashMap::new();
        let mut store_errors = 0u32;
        'run: loop {
            while let Some(done) = running.try_join_next_with_id() {
                finished(done, &mut pools, &mut in_flight);
            }
            if pools.iter().all(|p| p.free == 0) {
                tokio::select! {
                    Some(done) = running.join_next_with_id() => {
                        finished(done, &mut pools, &mut in_flight);
                        continue;
                    }
                    () = shutdown.cancelled() => break,
                }
            }
            // The pools claim at once: on SQLite their claims share a turn
            // of the writer, on PostgreSQL their round trips overlap.
            let claims = pools
                .iter()
                .enumerate()
                .filter(|(_, pool)| pool.free > 0)
                .map(|(index, pool)| async move {
                    (index, self.claim(pool.queue.as_deref(), pool.free).await)
                });
            let mut claimed_any = false;
            let mut failed = false;
            for (index, claimed) in futures_util::future::join_all(claims).await {
                let jobs = match claimed {
                    Ok(jobs) => jobs,
                    Err(error) => {
                        tracing::error!(worker_id = %config.id, error = ?error, "cannot claim jobs");
                        failed = true;
                        continue;
                    }
                };
                claimed_any |= !jobs.is_empty();
                pools[index].free -= jobs.len();
                for job in jobs {
                    let attempt = (job.id, job.attempt);
                    let (shared, outcomes) = (shared.clone(), outcomes.clone());
                    let task = running.spawn(async move {
                        let outcome = shared.execute(job).await;
                        // The recorder outlives every job task.
                        let _ = outcomes.send(outcome);
                    });
                    in_flight.insert(task.id(), (index, attempt));
                }
            }
            if failed {
                store_errors += 1;
                let pause = Duration::from_millis(50 * 2u64.pow(store_errors.min(6)));
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue 'run,
                    () = shutdown.cancelled() => break 'run,
                }
            }
            store_errors = 0;
            if claimed_any {
                continue;
            }
            let wait = self.idle_wait(&pools).await;
            // Only a job of a full pool frees a slot worth claiming for; the
            // others' pools found nothing due.
            let full: Vec<bool> = pools.iter().map(|p| p.free == 0).collect();
            let sleep = shared.store.job_wait_for_change(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => continue 'run,
                    Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                        let pool = finished(done, &mut pools, &mut in_flight);
                        if pool.is_some_and(|p| full[p]) {
                            continue 'run;
                        }
                    }
                    () = shutdown.cancelled() => break 'run,
                }
            }
        }

        tracing::info!(worker_id = %config.id, in_flight = in_flight.len(), "worker stopping");
        let finish = async {
            while let Some(done) = running.join_next_with_id().await {
                finished(done, &mut pools, &mut in_flight);
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
        let _ = tokio::join!(heartbeat, maintenance, scheduler, rollup);
        if let Err(error) = shared.store.worker_gone(&config.id).await {
            tracing::warn!(worker_id = %config.id, error = ?error, "cannot remove this worker's row");
        }
        let releases: Vec<Release> = in_flight
            .into_values()
            .map(|(_, (id, attempt))| Release { id, attempt })
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

    /// How long to sleep with nothing claimed: until the next scheduled job
    /// of a pool with a free slot, at most `idle_wait`. A job already due
    /// that no claim took waits behind its queue's limits, which free up as
    /// jobs finish or time passes: look again after [`HELD_BACK_POLL`].
    async fn idle_wait(&self, pools: &[Pool]) -> Duration {
        let config = &self.shared.config;
        let now = self.shared.clock.now();
        let mut wait = config.idle_wait;
        for pool in pools.iter().filter(|p| p.free > 0) {
            match self
                .shared
                .store
                .job_next_scheduled_at(pool.queue.as_deref())
                .await
            {
                Ok(Some(next)) => {
                    let until = next.since(now);
                    wait = wait.min(if until.is_zero() {
                        HELD_BACK_POLL
                    } else {
                        until
                    });
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(worker_id = %config.id, error = ?error, "cannot read the schedule");
                }
            }
        }
        wait
    }
}

/// How often a worker looks again while due jobs wait behind their queue's
/// limits (a concurrency limit frees when a job on any host finishes, a rate
/// limit as its window moves on; neither wakes this process).
const HELD_BACK_POLL: Duration = Duration::from_millis(20);

/// A queue this worker serves (`None`: every queue) and its free slots.
struct Pool {
    queue: Option<String>,
    free: usize,
}

/// Books a finished job task, however it ended: its slot is free again.
/// Returns its pool.
fn finished(
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    pools: &mut [Pool],
    in_flight: &mut HashMap<tokio::task::Id, (usize, (JobId, i32))>,
) -> Option<usize> {
    let task = match done {
        Ok((task, ())) => task,
        Err(error) => error.id(),
    };
    let (pool, _) = in_flight.remove(&task)?;
    pools[pool].free += 1;
    Some(pool)
}

/// How many batches of outcomes are written at once. On PostgreSQL each
/// part of a batch (see `WRITES_PER_TRANSACTION`) is a transaction of its
/// own on the bookkeeping pool, so the round trips of jobs' writes overlap
/// as far as the pool has connections; on SQLite they share the writer's
/// turns.
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

/// Renews leases and reports this process, three times per lease (the
/// first at once).
async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let (leases, beat) = tokio::join!(shared.heartbeat(), shared.beat());
        if let Err(error) = leases {
            tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot renew leases");
        }
        if let Err(error) = beat {
            tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot report this worker");
        }
    }
}

/// How long finished attempts gather before their rollup is written: one
/// write a second, whatever the throughput, and none while idle.
const ROLLUP_EVERY: Duration = Duration::from_secs(1);

/// Writes the rollup a second after the first attempt it holds, and once
/// more at the end.
async fn rollup_loop(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = shared.rollup_started.notified() => {}
            () = stop.cancelled() => break,
        }
        tokio::select! {
            () = tokio::time::sleep(ROLLUP_EVERY) => {}
            () = stop.cancelled() => break,
        }
        if let Err(error) = shared.flush_rollup().await {
            tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot write the rollup");
        }
    }
    if let Err(error) = shared.flush_rollup().await {
        tracing::warn!(worker_id = %shared.config.id, error = ?error, "cannot write the rollup");
    }
}
