//! The worker's run loop: wake-ups, leases, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tasuki_core::{JobStatus, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Env, next_started};
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
async fn heartbeats_keep_a_running_job_leased(engine: Engine) {
    let mut env = Env::new(engine).await;
    let mut config = env.config();
    config.lease = Duration::from_millis(300);
    config.job_timeout = Duration::from_secs(60);
    let worker = env.worker_with(config, Arc::new(SystemClock));
    let id = env.enqueue("signals", json!({"wait": true})).await;
    let running = Running::start(&worker);
    assert_eq!(next_started(&mut env).await, id);
    let first_expiry = env.job(id).await.lease_expires_at.unwrap();
    // Wait, with a deadline, until a heartbeat has moved the lease past its first expiry.
    let extended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            env.store
                .job_wait_for_change(Duration::from_millis(50))
                .await;
            let job = env.job(id).await;
            if job
                .lease_expires_at
                .is_some_and(|at| at > first_expiry.saturating_add(Duration::from_millis(300)))
            {
                return job;
            }
        }
    })
    .await
    .expect("a heartbeat extends the lease");
    assert_eq!(
        (extended.status, extended.attempt),
        (JobStatus::Processing, 1)
    );
    env.gate.notify_one();
    running.stop().await;
    let job = env.job(id).await;
    assert_eq!(
        (job.status, job.attempt, job.retry_count),
        (JobStatus::Completed, 1, 0)
    );
}

tasuki_conformance::engine_tests!(
    an_idle_worker_wakes_on_enqueue_and_shuts_down_cleanly,
    shutdown_hands_back_unfinished_jobs_without_spending_a_retry,
    heartbeats_keep_a_running_job_leased,
);
