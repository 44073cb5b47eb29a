//! Leases through the worker: what the store's fencing and leader lease mean
//! for two workers sharing one database, driven step by step on a pinned clock.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tasuki_conformance::Engine;
use tasuki_core::{Clock, JobStatus};
use tasuki_worker::Worker;

use crate::helpers::{Env, next_started};

/// A worker of its own name on the test's pinned clock.
fn named(env: &Env, id: &str) -> Worker {
    let mut config = env.config();
    config.id = id.into();
    env.worker_with(config, Arc::new(env.clock.clone()))
}

/// Also: the stalled worker's heartbeat after the rescue renews nothing.
async fn a_result_after_the_lease_was_lost_is_discarded_and_the_job_runs_again(engine: Engine) {
    let mut env = Env::new(engine).await;
    let id = env.enqueue("signals", json!({"wait": true})).await;
    let (first, second) = (named(&env, "first"), named(&env, "second"));
    let lease = env.config().lease;

    let beat = first.clone();
    let running = tokio::spawn(async move { first.run_once().await });
    assert_eq!(next_started(&mut env).await, id);
    // The first worker stalls past its lease; the second takes the job back.
    env.clock.advance(lease + Duration::from_secs(1));
    assert!(second.maintain_once().await, "nobody else leads");
    assert_eq!(env.job(id).await.status, JobStatus::RetryPending);

    // Its heartbeat after the rescue renews nothing: the lease is gone.
    assert_eq!(beat.heartbeat_once().await.unwrap(), 0);
    assert_eq!(env.job(id).await.lease_expires_at, None);

    env.gate.notify_one();
    assert_eq!(running.await.unwrap().unwrap(), 1, "the late attempt ran");
    let job = env.job(id).await;
    assert_eq!(
        job.status,
        JobStatus::RetryPending,
        "its completion was refused"
    );
    assert_eq!(job.result, None);
    assert_eq!(job.errors.len(), 1, "the lost attempt counts as failed");

    // A permit for the second attempt's wait at the gate.
    env.gate.notify_one();
    assert_eq!(second.run_once().await.unwrap(), 1);
    let job = env.job(id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result, Some(json!({"attempt": 2})));
    assert_eq!(job.lease_owner.as_deref(), Some("second"));
}

async fn maintenance_passes_to_another_worker_when_the_leader_stops_renewing(engine: Engine) {
    let env = Env::new(engine).await;
    let (first, second) = (named(&env, "first"), named(&env, "second"));
    assert!(first.maintain_once().await);
    assert!(!second.maintain_once().await, "one leader at a time");
    assert!(first.maintain_once().await, "the leader renews");

    // The leader stops (it died, or stalled): its lease runs out.
    env.clock.advance(Duration::from_secs(3_600));
    assert!(second.maintain_once().await, "the lease passed on");
    assert!(
        !first.maintain_once().await,
        "the old leader does not take it back"
    );

    // While the new leader renews, it keeps rescuing: a job whose worker
    // died is taken back by it.
    let id = env.enqueue("signals", json!({})).await;
    let lease = env.config().lease;
    let claimed = env
        .store
        .job_claim(tasuki_core::ClaimParams {
            owner: "dead",
            queue: None,
            limit: 1,
            now: env.clock.now(),
            lease_expires_at: env.clock.now().saturating_add(lease),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    env.clock.advance(lease + Duration::from_secs(1));
    assert!(second.maintain_once().await);
    assert_eq!(env.job(id).await.status, JobStatus::RetryPending);
}

tasuki_conformance::engine_tests!(
    a_result_after_the_lease_was_lost_is_discarded_and_the_job_runs_again,
    maintenance_passes_to_another_worker_when_the_leader_stops_renewing,
);
