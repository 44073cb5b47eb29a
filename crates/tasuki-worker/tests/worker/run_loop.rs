//! The worker's run loop: wake-ups, leases, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tasuki_conformance::schedule;
use tasuki_core::{Clock, JobStatus, Missed, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Env, T0, next_started};
use tasuki_conformance::Engine;

/// A worker's run loop on its own task, stopped like a signal would.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), tasuki_worker::WorkerError>>,
}

impl Running {
    fn start(worker: &tasuki_worker::Worker) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (worker, stop) = (worker.clone(), stop.clone());
            async move { worker.run(stop).await }
        });
        Self { stop, task }
    }

    /// Cancels and waits, with a deadline, for a clean exit.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the worker stops before the deadline")
            .unwrap()
            .unwrap();
    }
}

/// An idle worker starts a job enqueued in its process at once: its fallback
/// wait is an hour, so only the wake-up can start the job before the deadline.
async fn an_idle_worker_wakes_on_enqueue_and_shuts_down_cleanly(engine: Engine) {
    let mut env = Env::new(engine).await;
    let mut config = env.config();
    config.idle_wait = Duration::from_secs(3600);
    let worker = env.worker_with(config, Arc::new(SystemClock));
    let running = Running::start(&worker);

    let first = env.enqueue("signals", json!({})).await;
    assert_eq!(next_started(&mut env).await, first);
    let second = env.enqueue("signals", json!({})).await;
    assert_eq!(next_started(&mut env).await, second);

    running.stop().await;
    for id in [first, second] {
        let job = env.job(id).await;
        assert_eq!(
            job.status,
            JobStatus::Completed,
            "finished work is recorded before exit"
        );
    }
}

/// At shutdown, a job that does not finish in time is handed back unspent;
/// one that finishes in time is completed.
async fn shutdown_hands_back_unfinished_jobs_without_spending_a_retry(engine: Engine) {
    let mut env = Env::new(engine).await;
    let mut config = env.config();
    config.shutdown_timeout = Duration::from_millis(300);
    config.job_timeout = Duration::from_secs(60);
    let worker = env.worker_with(config, Arc::new(SystemClock));
    let stuck = env.enqueue("signals", json!({"wait": true})).await;
    let running = Running::start(&worker);
    assert_eq!(next_started(&mut env).await, stuck);
    running.stop().await;

    let job = env.job(stuck).await;
    assert_eq!(
        (job.status, job.retry_count, job.lease_expires_at),
        (JobStatus::Pending, 0, None)
    );
    assert!(job.errors.is_empty());

    // The next worker runs it again, and this time it finishes.
    env.gate.notify_one();
    assert_eq!(
        env.worker_with(env.config(), Arc::new(SystemClock))
            .drain()
            .await
            .unwrap(),
        1
    );
    let job = env.job(stuck).await;
    assert_eq!(
        (job.status, job.attempt, job.result),
        (JobStatus::Completed, 2, Some(json!({"attempt": 2})))
    );
}

/// Heartbeats keep a long job's lease alive past its first expiry, so the
/// maintenance leader does not take it back.
///
/// The clock is pinned, and the test moves it by less than a lease at a time,
/// each time waiting for the heartbeat that renews the lease from the new
/// time: however late heartbeats run on a loaded machine, the lease never
/// ends in the time they take, while without them it would end at the second
/// step and the maintenance rounds (every 100 ms) would take the job back.
async fn heartbeats_keep_a_running_job_leased(engine: Engine) {
    let mut env = Env::new(engine).await;
    let lease = Duration::from_millis(300);
    let mut config = env.config();
    config.lease = lease;
    config.job_timeout = Duration::from_secs(60);
    let worker = env.worker_with(config, Arc::new(env.clock.clone()));
    let id = env.enqueue("signals", json!({"wait": true})).await;
    let running = Running::start(&worker);
    assert_eq!(next_started(&mut env).await, id);
    let first_expiry = env.job(id).await.lease_expires_at.unwrap();
    assert_eq!(first_expiry, T0.saturating_add(lease));
    for _ in 0..3 {
        env.clock.advance(lease * 2 / 3);
        let renewed = Some(env.clock.now().saturating_add(lease));
        // Wait, with a deadline, for a heartbeat at the new time.
        tokio::time::timeout(Duration::from_secs(10), async {
            while env.job(id).await.lease_expires_at != renewed {
                env.store
                    .job_wait_for_change(Duration::from_millis(50))
                    .await;
            }
        })
        .await
        .expect("a heartbeat renews the lease");
    }
    assert!(env.clock.now() > first_expiry);
    // Past the first expiry, a maintenance round of its own takes nothing back.
    assert!(worker.maintain_once().await, "the worker leads maintenance");
    let job = env.job(id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Processing, 1));
    env.gate.notify_one();
    running.stop().await;
    let job = env.job(id).await;
    assert_eq!(
        (job.status, job.attempt, job.retry_count),
        (JobStatus::Completed, 1, 0)
    );
}

/// The scheduler sleeps until the next slot, not until its idle wait (an
/// hour here): an every-second schedule's job starts within the deadline.
async fn the_scheduler_fires_each_slot_when_it_comes(engine: Engine) {
    let mut env = Env::new(engine).await;
    let every_second = schedule("signals", "* * * * * *", Missed::Coalesce, None);
    env.store
        .schedule_sync(&[every_second], SystemClock.now())
        .await
        .unwrap();
    let mut config = env.config();
    config.idle_wait = Duration::from_secs(3600);
    let worker = env.worker_with(config, Arc::new(SystemClock));
    let running = Running::start(&worker);
    let first = next_started(&mut env).await;
    let second = next_started(&mut env).await;
    running.stop().await;
    let (first, second) = (env.job(first).await, env.job(second).await);
    assert_eq!(
        second.scheduled_at.since(first.scheduled_at),
        Duration::from_secs(1),
        "consecutive slots"
    );
}

tasuki_conformance::engine_tests!(
    the_scheduler_fires_each_slot_when_it_comes,
    an_idle_worker_wakes_on_enqueue_and_shuts_down_cleanly,
    shutdown_hands_back_unfinished_jobs_without_spending_a_retry,
    heartbeats_keep_a_running_job_leased,
);
