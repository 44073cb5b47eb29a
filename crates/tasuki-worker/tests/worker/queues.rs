//! A worker's pools of slots, one per queue it serves.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tasuki_core::{Clock, JobStatus, NewJob, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Env, next_started};
use tasuki_conformance::Engine;

/// A worker that serves one queue leaves the others' jobs alone.
async fn a_worker_runs_only_the_queues_it_serves(engine: Engine) {
    let env = Env::new(engine).await;
    let now = env.clock.now();
    let mail = env
        .store
        .job_insert(NewJob::new("echo", json!({}), now).queue("email"))
        .await
        .unwrap()
        .job
        .id;
    let other = env.enqueue("echo", json!({})).await;
    let mut config = env.config();
    config.queues = vec![("email".into(), 2)];
    let worker = env.worker_with(config, Arc::new(env.clock.clone()));
    assert_eq!(worker.drain().await.unwrap(), 1);
    assert_eq!(env.job(mail).await.status, JobStatus::Completed);
    assert_eq!(env.job(other).await.status, JobStatus::Pending);
}

/// With a slot of its own, a queue's job starts while every slot of another
/// queue is taken by a job that does not end.
async fn a_busy_queue_does_not_hold_up_another(engine: Engine) {
    let mut env = Env::new(engine).await;
    let mut config = env.config();
    config.queues = vec![("default".into(), 1), ("email".into(), 1)];
    config.job_timeout = Duration::from_secs(60);
    config.shutdown_timeout = Duration::from_millis(100);
    let worker = env.worker_with(config, Arc::new(SystemClock));
    let stuck = env.enqueue("signals", json!({"wait": true})).await;
    let waiting = env.enqueue("signals", json!({})).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (worker, stop) = (worker.clone(), stop.clone());
        async move { worker.run(stop).await }
    });
    assert_eq!(next_started(&mut env).await, stuck);
    let now = env.clock.now();
    let mail = env
        .store
        .job_insert(NewJob::new("signals", json!({}), now).queue("email"))
        .await
        .unwrap()
        .job
        .id;
    assert_eq!(
        next_started(&mut env).await,
        mail,
        "not {waiting}, behind the stuck job"
    );
    stop.cancel();
    env.gate.notify_one();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the worker stops before the deadline")
        .unwrap()
        .unwrap();
}

tasuki_conformance::engine_tests!(
    a_worker_runs_only_the_queues_it_serves,
    a_busy_queue_does_not_hold_up_another,
);
