//! The worker driven one step at a time on a pinned clock.

use std::time::Duration;

use serde_json::json;
use std::sync::Arc;

use tasuki_core::{ClaimParams, Clock, JobStatus, Missed, NewJob, StoreError};

use crate::helpers::{Env, T0};
use tasuki_conformance::Engine;

async fn drain_runs_every_due_job_and_stores_results(engine: Engine) {
    let env = Env::new(engine).await;
    let ids: Vec<_> = futures_join(&env, 10).await;
    let later = env
        .store
        .job_insert(
            NewJob::new("echo", json!({}), T0)
                .scheduled_at(T0.saturating_add(Duration::from_secs(60))),
        )
        .await
        .unwrap()
        .job
        .id;
    assert_eq!(env.worker().drain().await.unwrap(), 10);
    for (n, id) in ids.into_iter().enumerate() {
        let job = env.job(id).await;
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.result, Some(json!({ "n": n })));
        assert_eq!(job.lease_owner.as_deref(), Some("test-worker"));
    }
    assert_eq!(
        env.job(later).await.status,
        JobStatus::Pending,
        "not due yet"
    );
    env.clock.advance(Duration::from_secs(60));
    assert_eq!(env.worker().drain().await.unwrap(), 1);
}

async fn futures_join(env: &Env, n: usize) -> Vec<tasuki_core::JobId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(env.enqueue("echo", json!({ "n": i })).await);
    }
    ids
}

async fn failures_retry_with_persisted_backoff_until_success(engine: Engine) {
    let env = Env::new(engine).await;
    let id = env.enqueue("flaky", json!({"fail": 2})).await;
    let worker = env.worker();
    let base = Duration::from_secs(1);

    assert_eq!(worker.run_once().await.unwrap(), 1);
    let job = env.job(id).await;
    assert_eq!((job.status, job.retry_count), (JobStatus::RetryPending, 1));
    let wait = job.scheduled_at.since(T0);
    assert!(wait <= base, "first backoff is within [0, base): {wait:?}");
    assert_eq!(job.errors.len(), 1);
    assert_eq!(job.error_message.as_deref(), Some("not yet"));

    env.clock.set(job.scheduled_at);
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let job = env.job(id).await;
    assert_eq!((job.status, job.retry_count), (JobStatus::RetryPending, 2));
    let wait = job.scheduled_at.since(env.clock.now());
    assert!(
        wait <= base * 2,
        "second backoff is within [0, 2 * base): {wait:?}"
    );

    if !wait.is_zero() {
        assert_eq!(
            worker.run_once().await.unwrap(),
            0,
            "nothing runs before its backoff ends"
        );
    }
    env.clock.set(job.scheduled_at);
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let job = env.job(id).await;
    assert_eq!(
        (job.status, job.retry_count, job.attempt),
        (JobStatus::Completed, 2, 3)
    );
    assert_eq!(
        job.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
}

async fn retry_after_uses_the_handlers_delay_and_budget_ends_in_failed(engine: Engine) {
    let env = Env::new(engine).await;
    let id = env
        .store
        .job_insert(NewJob::new("flaky", json!({"fail": 5, "after_ms": 7_000}), T0).max_retries(1))
        .await
        .unwrap()
        .job
        .id;
    let worker = env.worker();
    worker.run_once().await.unwrap();
    let job = env.job(id).await;
    assert_eq!(job.scheduled_at, T0.saturating_add(Duration::from_secs(7)));
    env.clock.advance(Duration::from_secs(7));
    worker.run_once().await.unwrap();
    let job = env.job(id).await;
    assert_eq!((job.status, job.retry_count), (JobStatus::Failed, 1));
    assert_eq!(job.error_message.as_deref(), Some("not yet"));
    assert_eq!(job.errors.len(), 2, "the history keeps every attempt");
    assert_eq!(job.completed_at, Some(env.clock.now()));
}

async fn hopeless_jobs_fail_at_once(engine: Engine) {
    let env = Env::new(engine).await;
    let permanent = env.enqueue("permanent", json!({})).await;
    let unknown = env.enqueue("nobody_handles_this", json!({})).await;
    let bad_payload = env.enqueue("flaky", json!({"fail": "twice"})).await;
    assert_eq!(env.worker().drain().await.unwrap(), 3);
    for (id, message) in [
        (permanent, "this can never work"),
        (unknown, "no handler for job type `nobody_handles_this`"),
        (bad_payload, "payload does not parse"),
    ] {
        let job = env.job(id).await;
        assert_eq!(
            (job.status, job.retry_count),
            (JobStatus::Failed, 0),
            "{message}"
        );
        assert!(
            job.error_message.as_deref().unwrap().starts_with(message),
            "{:?}",
            job.error_message
        );
    }
}

async fn panics_and_timeouts_fail_the_attempt_not_the_worker(engine: Engine) {
    let env = Env::new(engine).await;
    let panics = env.enqueue("panics", json!({})).await;
    let sleeps = env.enqueue("sleeps", json!({})).await;
    let fine = env.enqueue("echo", json!({"ok": 1})).await;
    assert_eq!(env.worker().run_once().await.unwrap(), 3);

    let job = env.job(panics).await;
    assert_eq!(job.status, JobStatus::RetryPending);
    assert_eq!(
        job.error_message.as_deref(),
        Some("handler panicked: the handler lost its mind")
    );
    let job = env.job(sleeps).await;
    assert_eq!(job.status, JobStatus::RetryPending);
    assert_eq!(job.error_message.as_deref(), Some("timed out after 200ms"));
    assert_eq!(env.job(fine).await.status, JobStatus::Completed);
}

async fn maintenance_rescues_lost_leases_and_deletes_old_jobs(engine: Engine) {
    let env = Env::new(engine).await;
    let done = env.enqueue("echo", json!({})).await;
    assert_eq!(env.worker().drain().await.unwrap(), 1);
    let lost = env.enqueue("echo", json!({})).await;
    let claimed = env
        .store
        .job_claim(ClaimParams {
            owner: "a-worker-that-died",
            queue: None,
            limit: 1,
            now: T0,
            lease_expires_at: T0.saturating_add(Duration::from_secs(30)),
        })
        .await
        .unwrap();
    assert_eq!(claimed[0].id, lost);

    let mut config = env.config();
    config.retention = Duration::from_secs(3600);
    let clock = Arc::new(env.clock.clone());
    let leader = env.worker_with(config.clone(), clock.clone());
    env.clock.advance(Duration::from_secs(1800));
    assert!(leader.maintain_once().await, "the first to ask leads");
    assert_eq!(
        env.job(done).await.status,
        JobStatus::Completed,
        "kept: younger than retention"
    );
    let rescued = env.job(lost).await;
    assert_eq!(rescued.status, JobStatus::RetryPending);
    assert_eq!(rescued.errors[0].error, "lease expired");

    config.id = "another-worker".into();
    let other = env.worker_with(config, clock);
    assert!(!other.maintain_once().await, "one leader at a time");
    env.clock.advance(Duration::from_secs(1801));
    assert!(leader.maintain_once().await);
    assert!(
        matches!(env.store.job_get(done).await, Err(StoreError::NotFound)),
        "deleted past retention"
    );
}

/// A job's writes commit with its completion, and the jobs they enqueue
/// are checked by the registry. Writes that fail fail the attempt and leave
/// nothing behind: a follow-up job the registry refuses fails it for good;
/// a row that breaks a unique key is retried.
async fn writes_commit_with_the_completion_or_fail_the_attempt(engine: Engine) {
    let env = Env::new(engine).await;
    tasuki_conformance::create_effects(&env.db.backend).await;
    let refused = env
        .enqueue("effects", json!({"row": 1, "follow_up": "nobody"}))
        .await;
    assert_eq!(env.worker().run_once().await.unwrap(), 1);
    let job = env.job(refused).await;
    assert_eq!((job.status, job.retry_count), (JobStatus::Failed, 0));
    let error = job.error_message.unwrap_or_default();
    assert!(error.starts_with("unknown job type `nobody`"), "{error}");
    assert!(
        tasuki_conformance::effects(&env.db.backend)
            .await
            .is_empty()
    );

    let written = env
        .enqueue("effects", json!({"row": 2, "follow_up": "echo"}))
        .await;
    assert_eq!(env.worker().run_once().await.unwrap(), 1);
    let job = env.job(written).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result, Some(json!({"row": 2})));
    assert!(matches!(
        tasuki_conformance::effects(&env.db.backend).await[..],
        [(2, Some(_))]
    ));
    // The follow-up job it enqueued runs next.
    assert_eq!(env.worker().drain().await.unwrap(), 1);

    let again = env
        .enqueue("effects", json!({"row": 2, "follow_up": "echo"}))
        .await;
    assert_eq!(env.worker().run_once().await.unwrap(), 1);
    let job = env.job(again).await;
    assert_eq!((job.status, job.retry_count), (JobStatus::RetryPending, 1));
    assert!(
        job.error_message
            .unwrap_or_default()
            .contains("already exists")
    );
    assert!(matches!(
        tasuki_conformance::effects(&env.db.backend).await[..],
        [(2, Some(_))]
    ));
    assert_eq!(
        env.store
            .job_list(tasuki_core::JobFilter {
                job_type: Some("echo".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .items
            .len(),
        1,
        "nothing of the failed attempt was enqueued"
    );
}

/// A step of the scheduler fires what is due on the pinned clock, its jobs
/// checked by the registry (they get their type's retries), and the worker
/// runs them; a second step finds nothing more to fire. A schedule of a type
/// this worker does not know is left due, for a process that knows it.
async fn schedule_once_fires_due_slots_for_the_worker_to_run(engine: Engine) {
    let env = Env::new(engine).await;
    let echo = tasuki_conformance::schedule("echo", "*/10 * * * * *", Missed::CatchUp, None);
    let unknown = tasuki_conformance::schedule("unknown", "*/5 * * * * *", Missed::Coalesce, None);
    env.store.schedule_sync(&[echo, unknown], T0).await.unwrap();
    let worker = env.worker();
    env.clock.advance(Duration::from_secs(35));
    let fired = worker.schedule_once().await.unwrap();
    assert_eq!(fired.jobs.len(), 1);
    assert_eq!(fired.jobs[0].1.len(), 3, "slots 10, 20 and 30 s");
    assert_eq!(fired.refused.len(), 1);
    assert_eq!(fired.refused[0].0, "unknown");
    assert_eq!(
        fired.next,
        Some(T0.saturating_add(Duration::from_secs(40))),
        "the refused schedule's due slot is not the next wake-up"
    );
    let again = worker.schedule_once().await.unwrap();
    assert!(again.jobs.is_empty());
    assert_eq!(again.refused.len(), 1, "still due");
    assert_eq!(worker.drain().await.unwrap(), 3);
    for id in &fired.jobs[0].1 {
        let job = env.job(*id).await;
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.result, Some(json!({"from": "echo"})));
        assert_eq!(job.max_retries, 7, "the type's, from the registry");
    }
}

tasuki_conformance::engine_tests!(
    schedule_once_fires_due_slots_for_the_worker_to_run,
    writes_commit_with_the_completion_or_fail_the_attempt,
    maintenance_rescues_lost_leases_and_deletes_old_jobs,
    drain_runs_every_due_job_and_stores_results,
    failures_retry_with_persisted_backoff_until_success,
    retry_after_uses_the_handlers_delay_and_budget_ends_in_failed,
    hopeless_jobs_fail_at_once,
    panics_and_timeouts_fail_the_attempt_not_the_worker,
);
