//! Named queues (pause, concurrency and rate limits, counted by the
//! database) and unique jobs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tasuki_core::{
    ClaimParams, Completion, Job, JobStatus, QueueChange, RateLimit, Store, StoreError,
    UniqueStates,
};

use crate::{LEASE, T0, TestDb, at, claim, ids, insert_ids, noop, secs};

async fn claim_from(
    store: &Arc<dyn Store>,
    queue: &str,
    limit: u32,
    now: tasuki_core::Timestamp,
) -> Vec<Job> {
    store
        .job_claim(ClaimParams {
            owner: "w",
            queue: Some(queue),
            limit,
            now,
            lease_expires_at: now.saturating_add(LEASE),
        })
        .await
        .expect("claim")
}

async fn change(store: &Arc<dyn Store>, queue: &str, change: QueueChange) {
    store
        .queue_update(queue, change, T0)
        .await
        .expect("update the queue");
}

fn pause(paused: bool) -> QueueChange {
    QueueChange {
        paused: Some(paused),
        ..QueueChange::default()
    }
}

fn concurrency(limit: Option<u32>) -> QueueChange {
    QueueChange {
        concurrency: Some(limit),
        ..QueueChange::default()
    }
}

async fn complete(store: &Arc<dyn Store>, jobs: &[Job]) {
    let completions = jobs
        .iter()
        .map(|j| Completion {
            id: j.id,
            attempt: j.attempt,
            result: None,
            writes: None,
        })
        .collect();
    store
        .job_complete_many(at(secs(1)), completions)
        .await
        .expect("complete");
}

/// A job is in its enqueuer's queue, or `default`; a claim from one queue
/// takes only its jobs, a claim from every queue takes them all.
pub async fn jobs_are_claimed_from_their_queue(store: Arc<dyn Store>) {
    let mail = store.job_insert(noop(T0).queue("email")).await.unwrap().job;
    let plain = store.job_insert(noop(T0).priority(5)).await.unwrap().job;
    assert_eq!(
        (mail.queue.as_str(), plain.queue.as_str()),
        ("email", "default")
    );
    assert_eq!(ids(&claim_from(&store, "email", 10, T0).await), [mail.id]);
    assert!(claim_from(&store, "email", 10, T0).await.is_empty());
    store.job_insert(noop(T0).queue("email")).await.unwrap();
    assert_eq!(claim(&store, "w", 10, T0).await.len(), 2, "every queue");
    let queues = store.queue_list().await.unwrap();
    let names: Vec<(&str, i64, i64)> = queues
        .iter()
        .map(|q| (q.name.as_str(), q.waiting, q.running))
        .collect();
    assert_eq!(names, [("default", 0, 1), ("email", 0, 2)]);
}

/// A paused queue's jobs do not start, from a claim of that queue or of
/// every queue, and the next due time leaves them out; resumed, they do.
pub async fn a_paused_queue_starts_nothing_until_resumed(store: Arc<dyn Store>) {
    store.job_insert(noop(T0).queue("email")).await.unwrap();
    change(&store, "email", pause(true)).await;
    assert!(claim_from(&store, "email", 10, T0).await.is_empty());
    assert!(claim(&store, "w", 10, T0).await.is_empty());
    assert_eq!(store.job_next_scheduled_at(None).await.unwrap(), None);
    assert_eq!(
        store.job_next_scheduled_at(Some("email")).await.unwrap(),
        None
    );
    let listed = store.queue_list().await.unwrap();
    assert!(listed[0].settings.paused && listed[0].waiting == 1);
    change(&store, "email", pause(false)).await;
    assert_eq!(
        store.job_next_scheduled_at(Some("email")).await.unwrap(),
        Some(T0)
    );
    assert_eq!(claim(&store, "w", 10, T0).await.len(), 1);
}

/// Changes of different settings keep each other: a limit set while the
/// queue is paused leaves it paused.
pub async fn queue_changes_keep_the_other_settings(store: Arc<dyn Store>) {
    change(&store, "q", pause(true)).await;
    change(&store, "q", concurrency(Some(4))).await;
    let rate = RateLimit {
        limit: 10,
        period: Duration::from_secs(60),
    };
    let info = store
        .queue_update(
            "q",
            QueueChange {
                rate_limit: Some(Some(rate)),
                ..QueueChange::default()
            },
            T0,
        )
        .await
        .unwrap();
    assert!(info.settings.paused);
    assert_eq!(info.settings.concurrency, Some(4));
    assert_eq!(info.settings.rate_limit, Some(rate));
    let info = store
        .queue_update("q", concurrency(None), T0)
        .await
        .unwrap();
    assert_eq!(
        (info.settings.concurrency, info.settings.rate_limit),
        (None, Some(rate))
    );
}

/// A concurrency limit holds across claimers of several processes racing:
/// never more of the queue's jobs processing than the limit; a finished or
/// rescued job frees its place.
pub async fn a_concurrency_limit_holds_across_processes(db: &TestDb) {
    let stores = [db.store.clone(), db.reopen().await, db.reopen().await];
    let store = &stores[0];
    insert_ids(store, (0..40).map(|_| noop(T0).queue("limited")).collect()).await;
    insert_ids(store, (0..10).map(|_| noop(T0)).collect()).await;
    change(store, "limited", concurrency(Some(3))).await;
    let claimers = stores.iter().enumerate().flat_map(|(n, store)| {
        (0..4).map(move |k| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for round in 0..5 {
                    let queue = (round + k) % 2 == 0;
                    let batch = if queue {
                        claim_from(&store, "limited", 2, T0).await
                    } else {
                        claim(&store, &format!("c{n}{k}"), 2, T0).await
                    };
                    mine.extend(batch);
                }
                mine
            })
        })
    });
    let mut limited = 0;
    let mut seen = HashSet::new();
    for claimer in claimers.collect::<Vec<_>>() {
        for job in claimer.await.unwrap() {
            assert!(seen.insert(job.id), "job {} claimed twice", job.id);
            limited += usize::from(job.queue == "limited");
        }
    }
    assert_eq!(limited, 3, "the limit is 3, and 40 jobs were due");
    assert_eq!(seen.len(), 13, "the free queue's 10 and the limited 3");
    let running = store
        .job_list(tasuki_core::JobFilter {
            status: Some(JobStatus::Processing),
            queue: Some("limited".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    complete(store, &running[..1]).await;
    assert_eq!(claim_from(store, "limited", 5, at(secs(1))).await.len(), 1);
    // All three outlive their leases: rescued, they stop counting.
    let expired = T0.saturating_add(LEASE + secs(1));
    store.job_rescue_expired(expired, 100).await.unwrap();
    assert_eq!(claim_from(store, "limited", 5, expired).await.len(), 3);
}

/// A rate limit counts the starts within its window, whoever claimed them:
/// never more in any window, and the next starts come as it moves on.
pub async fn a_rate_limit_holds_in_every_window(db: &TestDb) {
    let (one, two) = (db.store.clone(), db.reopen().await);
    insert_ids(&one, (0..20).map(|_| noop(T0).queue("slow")).collect()).await;
    let rate = RateLimit {
        limit: 4,
        period: Duration::from_secs(10),
    };
    let set = QueueChange {
        rate_limit: Some(Some(rate)),
        ..QueueChange::default()
    };
    change(&one, "slow", set).await;
    let mut starts = Vec::new();
    // Claims every second for 25 seconds, alternating between processes
    // and between a claim of the queue and of every queue.
    for second in 0..25u64 {
        let now = at(secs(second));
        let store = if second % 2 == 0 { &one } else { &two };
        let batch = if second % 3 == 0 {
            claim(store, "w", 3, now).await
        } else {
            claim_from(store, "slow", 3, now).await
        };
        starts.extend(batch.iter().map(|_| second));
    }
    for window_start in 0..25u64 {
        let in_window = starts
            .iter()
            .filter(|s| (window_start..window_start + 10).contains(*s))
            .count();
        assert!(
            in_window <= 4,
            "{in_window} starts in the window from {window_start}s: {starts:?}"
        );
    }
    assert_eq!(
        starts.len(),
        12,
        "4 in each of the windows [0,10), [10,20), [20,25): {starts:?}"
    );
}

/// An enqueue with a held unique key answers with the holder, not a second
/// job; the key is free again once the holder is in a state that does not
/// count, unless the enqueuer counted it.
pub async fn a_unique_key_admits_one_job(store: Arc<dyn Store>) {
    let first = store
        .job_insert(noop(T0).unique("k", UniqueStates::LIVE))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.job.unique_key.as_deref(), Some("k"));
    let again = store
        .job_insert(noop(T0).unique("k", UniqueStates::LIVE).priority(9))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.job.id, first.job.id);
    let other_type = store
        .job_insert(
            tasuki_core::NewJob::new("other", serde_json::json!({}), T0)
                .unique("k", UniqueStates::LIVE),
        )
        .await
        .unwrap();
    assert!(!other_type.duplicate, "keys are per job type");
    // Running, it still holds the key; completed, it no longer does.
    let running = claim(&store, "w", 1, T0).await;
    assert_eq!(ids(&running), [first.job.id]);
    assert!(
        store
            .job_insert(noop(T0).unique("k", UniqueStates::LIVE))
            .await
            .unwrap()
            .duplicate
    );
    complete(&store, &running).await;
    let next = store
        .job_insert(noop(T0).unique("k", UniqueStates::with([JobStatus::Completed])))
        .await
        .unwrap();
    assert!(!next.duplicate);
    // That one counts its completion: once completed, it still holds.
    let running = claim(&store, "w", 10, T0).await;
    assert!(ids(&running).contains(&next.job.id));
    complete(&store, &running).await;
    let after = store
        .job_insert(noop(T0).unique("k", UniqueStates::LIVE))
        .await
        .unwrap();
    assert!(after.duplicate);
    assert_eq!(after.job.id, next.job.id);
    assert_eq!(after.job.status, JobStatus::Completed);
}

/// A bulk enqueue answers per job: duplicates inside the batch and of
/// existing jobs name the holder.
pub async fn a_bulk_enqueue_answers_per_unique_job(store: Arc<dyn Store>) {
    let held = store
        .job_insert(noop(T0).unique("a", UniqueStates::LIVE))
        .await
        .unwrap()
        .job;
    let other = || tasuki_core::NewJob::new("other", serde_json::json!({}), T0);
    let batch = vec![
        noop(T0),
        noop(T0).unique("a", UniqueStates::LIVE),
        other().unique("a", UniqueStates::LIVE),
        noop(T0).unique("b", UniqueStates::LIVE),
        noop(T0).unique("b", UniqueStates::LIVE),
        noop(T0),
    ];
    let inserted = store.job_insert_many(batch).await.unwrap();
    let dup: Vec<bool> = inserted.iter().map(|i| i.duplicate).collect();
    assert_eq!(dup, [false, true, false, false, true, false]);
    assert_eq!(inserted[1].id, held.id);
    assert_eq!(inserted[4].id, inserted[3].id);
    let ids: HashSet<_> = inserted.iter().map(|i| i.id).collect();
    assert_eq!(ids.len(), 5, "four new jobs and the holder");
    assert_eq!(claim(&store, "w", 10, T0).await.len(), 5);
}

/// Retrying a failed unique job while another live job holds its key is
/// refused: there are never two live jobs with one key.
pub async fn a_retry_never_makes_a_second_live_unique_job(store: Arc<dyn Store>) {
    let first = store
        .job_insert(noop(T0).unique("k", UniqueStates::LIVE))
        .await
        .unwrap()
        .job;
    store.job_cancel(first.id, T0).await.unwrap();
    let second = store
        .job_insert(noop(T0).unique("k", UniqueStates::LIVE))
        .await
        .unwrap();
    assert!(!second.duplicate);
    match store.job_retry(first.id, T0).await {
        Err(StoreError::Conflict(why)) => assert!(why.contains("unique key"), "{why}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    store.job_cancel(second.job.id, T0).await.unwrap();
    assert_eq!(
        store.job_retry(first.id, T0).await.unwrap().status,
        JobStatus::Pending
    );
}
