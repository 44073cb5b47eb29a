//! Claiming: exclusive, ordered, due jobs only.

use std::collections::HashSet;
use std::sync::Arc;

use tasuki_core::{JobStatus, Store};

use crate::{T0, at, claim, ids, noop, secs};

/// Four claimers racing over 2,000 jobs get each job exactly once.
pub async fn claim_is_exclusive_under_concurrency(store: Arc<dyn Store>) {
    let jobs = (0..2_000).map(|_| noop(T0)).collect();
    store.job_insert_many(jobs).await.unwrap();
    let claimers = (0..4).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let owner = format!("claimer-{n}");
            let mut mine = Vec::new();
            loop {
                let batch = claim(&store, &owner, 7, at(secs(1))).await;
                if batch.is_empty() {
                    return mine;
                }
                assert!(
                    batch
                        .iter()
                        .all(|j| j.lease_owner.as_deref() == Some(owner.as_str()))
                );
                mine.extend(ids(&batch));
            }
        })
    });
    let mut seen = HashSet::new();
    let mut total = 0;
    for claimer in claimers.collect::<Vec<_>>() {
        for id in claimer.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(total, 2_000);
    let stats = store.job_stats(at(secs(1))).await.unwrap();
    assert_eq!(stats.count(JobStatus::Processing), 2_000);
}

/// A claim of every queue takes the best due jobs over all of them, whichever
/// queue they are in; a better job not yet due waits.
pub async fn claim_orders_by_priority_then_schedule_then_id(store: Arc<dyn Store>) {
    let not_due = store
        .job_insert(noop(T0).priority(9).scheduled_at(at(secs(100))))
        .await
        .unwrap()
        .job
        .id;
    let low_early = store.job_insert(noop(T0).priority(0)).await.unwrap().job.id;
    let high_late = store
        .job_insert(
            noop(T0)
                .priority(5)
                .scheduled_at(at(secs(2)))
                .queue("email"),
        )
        .await
        .unwrap()
        .job
        .id;
    let high_early = store
        .job_insert(noop(T0).priority(5).scheduled_at(at(secs(1))))
        .await
        .unwrap()
        .job
        .id;
    let low_early_2 = store
        .job_insert(noop(T0).priority(0).queue("email"))
        .await
        .unwrap()
        .job
        .id;
    let negative = store
        .job_insert(noop(T0).priority(-1).queue("bulk"))
        .await
        .unwrap()
        .job
        .id;

    let first = claim(&store, "w", 2, at(secs(10))).await;
    assert_eq!(
        ids(&first),
        [high_early, high_late],
        "best first, in the returned order too"
    );
    let rest = claim(&store, "w", 10, at(secs(10))).await;
    assert_eq!(ids(&rest), [low_early, low_early_2, negative]);
    assert_eq!(ids(&claim(&store, "w", 10, at(secs(100))).await), [not_due]);
    let job = &rest[0];
    assert_eq!(job.status, JobStatus::Processing);
    assert_eq!(job.attempt, 1);
    assert_eq!(job.started_at, Some(at(secs(10))));
    assert_eq!(job.lease_expires_at, Some(at(secs(40))));
}

pub async fn claim_respects_schedule_and_limit(store: Arc<dyn Store>) {
    let due = store.job_insert(noop(T0)).await.unwrap().job.id;
    let later = store
        .job_insert(noop(T0).scheduled_at(at(secs(60))))
        .await
        .unwrap()
        .job
        .id;
    assert!(
        claim(&store, "w", 0, T0).await.is_empty(),
        "a zero limit claims nothing"
    );
    assert_eq!(ids(&claim(&store, "w", 10, T0).await), [due]);
    assert!(
        claim(&store, "w", 10, at(secs(59))).await.is_empty(),
        "not due yet"
    );
    assert_eq!(ids(&claim(&store, "w", 10, at(secs(60))).await), [later]);
    assert!(
        claim(&store, "w", 10, at(secs(3600))).await.is_empty(),
        "nothing is claimed twice"
    );
}
