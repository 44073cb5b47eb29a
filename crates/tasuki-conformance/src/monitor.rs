//! What operators watch: worker heartbeats, the per-minute rollup, the
//! queues' counts by state, bulk deletes, and the worker of each attempt.

use std::sync::Arc;

use tasuki_core::{
    BucketCount, Completion, Failure, JobStatus, Metric, NewJob, QueueChange, RollupCount, Store,
    StoreError, Timestamp, WorkerInfo, WorkerQueue, minute_of,
};

use crate::{LEASE, T0, at, claim, insert_ids, noop, secs};

fn worker(id: &str, running: u32, heartbeat_at: Timestamp) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        host: "host-a".into(),
        pid: 4242,
        queues: vec![WorkerQueue {
            name: "*".into(),
            slots: 3,
        }],
        slots: 3,
        running,
        started_at: T0,
        heartbeat_at,
    }
}

pub async fn workers_report_and_go(store: Arc<dyn Store>) {
    store.worker_beat(&worker("w1", 0, T0)).await.unwrap();
    store
        .worker_beat(&worker("w2", 1, at(secs(30))))
        .await
        .unwrap();
    assert_eq!(
        store.worker_list(at(secs(10))).await.unwrap(),
        [worker("w2", 1, at(secs(30)))],
        "only the ones heard from since"
    );
    // A beat replaces the row.
    store
        .worker_beat(&worker("w1", 2, at(secs(40))))
        .await
        .unwrap();
    assert_eq!(
        store.worker_list(at(secs(10))).await.unwrap(),
        [worker("w1", 2, at(secs(40))), worker("w2", 1, at(secs(30)))]
    );
    store.worker_gone("w1").await.unwrap();
    store.worker_gone("never-there").await.unwrap();
    assert_eq!(
        store.worker_list(T0).await.unwrap(),
        [worker("w2", 1, at(secs(30)))]
    );
    // A day after it went silent, a row is forgotten.
    let later = at(secs(30 + 24 * 3600 + 1));
    store.worker_beat(&worker("w3", 0, later)).await.unwrap();
    assert_eq!(
        store.worker_list(Timestamp::from_micros(0)).await.unwrap(),
        [worker("w3", 0, later)]
    );
}

fn count(minute: u64, queue: &str, metric: Metric, bucket: i32, count: i64) -> RollupCount {
    RollupCount {
        minute: minute_of(at(secs(minute * 60))),
        queue: queue.into(),
        metric,
        bucket,
        count,
    }
}

fn summed(minute: u64, metric: Metric, bucket: i32, count: i64) -> BucketCount {
    BucketCount {
        minute: minute_of(at(secs(minute * 60))),
        metric,
        bucket,
        count,
    }
}

pub async fn rollup_counts_add_up_and_age_out(store: Arc<dyn Store>) {
    let first = vec![
        count(0, "a", Metric::Run, 10, 5),
        count(0, "a", Metric::Wait, 3, 5),
        count(1, "b", Metric::Failed, 12, 1),
    ];
    store.rollup_add(first).await.unwrap();
    store
        .rollup_add(vec![
            count(0, "a", Metric::Run, 10, 2),
            count(0, "b", Metric::Run, 10, 1),
            count(2, "a", Metric::Run, 11, 4),
        ])
        .await
        .unwrap();
    store.rollup_add(Vec::new()).await.unwrap();
    assert_eq!(
        store.rollup_since(T0).await.unwrap(),
        [
            summed(0, Metric::Run, 10, 8),
            summed(0, Metric::Wait, 3, 5),
            summed(1, Metric::Failed, 12, 1),
            summed(2, Metric::Run, 11, 4),
        ],
        "counts of one key add up, and are summed over queues"
    );
    assert_eq!(store.rollup_since(at(secs(60))).await.unwrap().len(), 2);
    assert_eq!(store.rollup_prune(at(secs(120))).await.unwrap(), 4);
    assert_eq!(
        store.rollup_since(T0).await.unwrap(),
        [summed(2, Metric::Run, 11, 4)]
    );
}

pub async fn queue_counts_come_by_state(store: Arc<dyn Store>) {
    let in_b = |n: NewJob| n.queue("b");
    let ids = insert_ids(
        &store,
        vec![
            noop(T0).priority(9),                      // running
            noop(T0).priority(8),                      // completed
            noop(T0).priority(7),                      // failed
            noop(T0),                                  // waiting
            noop(T0).scheduled_at(at(secs(600))),      // scheduled
            in_b(noop(T0)),                            // cancelled
            in_b(noop(T0).scheduled_at(at(secs(60)))), // scheduled
        ],
    )
    .await;
    let claimed = claim(&store, "w", 3, T0).await;
    assert_eq!(claimed.len(), 3);
    store
        .job_complete_many(
            at(secs(1)),
            vec![Completion {
                id: ids[1],
                attempt: claimed[1].attempt,
                result: None,
                writes: None,
            }],
        )
        .await
        .unwrap();
    store
        .job_fail_many(
            at(secs(1)),
            vec![Failure {
                id: ids[2],
                attempt: claimed[2].attempt,
                error: "no".into(),
                retry_at: None,
            }],
        )
        .await
        .unwrap();
    store.job_cancel(ids[5], at(secs(1))).await.unwrap();
    store
        .queue_update(
            "idle",
            QueueChange {
                paused: Some(true),
                ..QueueChange::default()
            },
            T0,
        )
        .await
        .unwrap();

    let counts = store.queue_counts(at(secs(2))).await.unwrap();
    let row = |q: &str| counts.iter().find(|c| c.queue == q).cloned().unwrap();
    assert_eq!(
        counts.iter().map(|c| c.queue.as_str()).collect::<Vec<_>>(),
        ["b", "default", "idle"]
    );
    let a = row("default");
    assert_eq!(
        (a.waiting, a.scheduled, a.running, a.failed, a.cancelled),
        (1, 1, 1, 1, 0)
    );
    assert_eq!(a.oldest_due, Some(T0));
    let b = row("b");
    assert_eq!(
        (b.waiting, b.scheduled, b.running, b.failed, b.cancelled),
        (0, 1, 0, 0, 1)
    );
    assert_eq!(b.oldest_due, None, "nothing of b is due yet");
    let idle = row("idle");
    assert_eq!(
        (idle.waiting, idle.scheduled, idle.running, idle.failed),
        (0, 0, 0, 0)
    );
    // Due or not is as of the time asked.
    let later = store.queue_counts(at(secs(61))).await.unwrap();
    let b = later.iter().find(|c| c.queue == "b").unwrap();
    assert_eq!((b.waiting, b.scheduled), (1, 0));
}

pub async fn delete_many_leaves_running_jobs(store: Arc<dyn Store>) {
    let ids = insert_ids(&store, vec![noop(T0).priority(9), noop(T0), noop(T0)]).await;
    assert_eq!(claim(&store, "w", 1, T0).await[0].id, ids[0]);
    store.job_cancel(ids[2], T0).await.unwrap();
    let mut asked = ids.clone();
    asked.push(tasuki_core::JobId(424_242));
    assert_eq!(
        store.job_delete_many(&asked).await.unwrap(),
        [ids[1], ids[2]]
    );
    assert!(matches!(
        store.job_get(ids[1]).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.job_get(ids[0]).await.unwrap().status,
        JobStatus::Processing
    );
    assert!(store.job_delete_many(&[]).await.unwrap().is_empty());
}

pub async fn each_attempt_names_its_worker(store: Arc<dyn Store>) {
    let id = store.job_insert(noop(T0)).await.unwrap().job.id;
    let first = claim(&store, "w1", 1, T0).await.remove(0);
    store
        .job_fail_many(
            at(secs(1)),
            vec![Failure {
                id,
                attempt: first.attempt,
                error: "flaky".into(),
                retry_at: Some(at(secs(1))),
            }],
        )
        .await
        .unwrap();
    claim(&store, "w2", 1, at(secs(2))).await;
    store
        .job_rescue_expired(at(secs(2) + LEASE), 10)
        .await
        .unwrap();
    let job = store.job_get(id).await.unwrap();
    let workers: Vec<_> = job.errors.iter().map(|e| e.worker.as_deref()).collect();
    assert_eq!(workers, [Some("w1"), Some("w2")]);
}
