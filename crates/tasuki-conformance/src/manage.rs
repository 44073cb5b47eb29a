//! Cancel, get, list, stats, bulk insert, leader leases, the ready set.

use std::sync::Arc;

use serde_json::json;
use tasuki_core::{
    Completion, Failure, JobFilter, JobId, JobStatus, LeaderParams, NewJob, Store, StoreError,
};

use crate::{T0, at, claim, ids, insert_ids, noop, secs};

pub async fn cancel_pending_and_scheduled_only(store: Arc<dyn Store>) {
    let pending = store.job_insert(noop(T0)).await.unwrap().job.id;
    let scheduled = store
        .job_insert(noop(T0).scheduled_at(at(secs(600))))
        .await
        .unwrap()
        .job
        .id;
    let running = store.job_insert(noop(T0).priority(9)).await.unwrap().job.id;
    assert_eq!(claim(&store, "w", 1, T0).await[0].id, running);

    for id in [pending, scheduled] {
        let job = store.job_cancel(id, at(secs(1))).await.unwrap();
        assert_eq!(
            (job.status, job.completed_at),
            (JobStatus::Cancelled, Some(at(secs(1))))
        );
    }
    assert!(matches!(
        store.job_cancel(running, T0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.job_cancel(pending, T0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.job_cancel(JobId(424_242), T0).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        claim(&store, "w", 10, at(secs(3600))).await.is_empty(),
        "cancelled jobs never run"
    );
    // A cancelled job can be brought back.
    assert_eq!(
        store.job_retry(pending, at(secs(2))).await.unwrap().status,
        JobStatus::Pending
    );
}

pub async fn get_and_list_with_filters_and_cursor(store: Arc<dyn Store>) {
    let payload = json!({"to": "a@example.com", "n": [1, 2]});
    let inserted = store
        .job_insert(
            NewJob::new("mail", payload.clone(), T0)
                .priority(3)
                .max_retries(7),
        )
        .await
        .unwrap();
    let got = store.job_get(inserted.job.id).await.unwrap();
    assert!(!inserted.duplicate);
    assert_eq!(got, inserted.job);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got.payload).unwrap(),
        payload
    );
    assert_eq!(
        (got.priority, got.max_retries, got.retry_count, got.attempt),
        (3, 7, 0, 0)
    );
    assert_eq!(
        (got.status, got.created_at, got.scheduled_at),
        (JobStatus::Pending, T0, T0)
    );
    assert!(matches!(
        store.job_get(JobId(999_999)).await,
        Err(StoreError::NotFound)
    ));

    let more: Vec<NewJob> = (0..5).map(|i| noop(T0).priority(i)).collect();
    store.job_insert_many(more).await.unwrap();
    claim(&store, "w", 2, T0).await; // the two noops of priority 4 and 3

    let all = store
        .job_list(JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
    assert!(all.items.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all.next_after, None);

    let noops = JobFilter {
        job_type: Some("noop".into()),
        limit: 2,
        ..Default::default()
    };
    let page1 = store.job_list(noops.clone()).await.unwrap();
    assert_eq!(page1.items.len(), 2);
    let cursor = page1.next_after.expect("a full page has a next cursor");
    let page2 = store
        .job_list(JobFilter {
            after: Some(JobId(cursor)),
            ..noops.clone()
        })
        .await
        .unwrap();
    let page3 = store
        .job_list(JobFilter {
            after: page2.next_after.map(JobId),
            ..noops.clone()
        })
        .await
        .unwrap();
    let listed: Vec<_> = [page1.items, page2.items, page3.items].concat();
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|j| j.job_type == "noop"));

    // Newest first, page by page, is the same jobs the other way round.
    let newest = JobFilter {
        newest_first: true,
        ..noops
    };
    let mut pages = vec![store.job_list(newest.clone()).await.unwrap()];
    while let Some(cursor) = pages.last().unwrap().next_after {
        let after = Some(JobId(cursor));
        pages.push(
            store
                .job_list(JobFilter {
                    after,
                    ..newest.clone()
                })
                .await
                .unwrap(),
        );
    }
    let backwards: Vec<_> = pages.into_iter().flat_map(|p| p.items).rev().collect();
    assert_eq!(ids(&backwards), ids(&listed));

    // A bounded scan looks at 2 ids a page: short pages go on below what
    // they looked at, until the first id; nothing is missed or repeated.
    let scanned = JobFilter {
        scan: Some(2),
        limit: 1,
        ..newest
    };
    let mut found = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .job_list(JobFilter {
                after,
                ..scanned.clone()
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 1);
        found.extend(page.items);
        pages += 1;
        match page.next_after {
            Some(next) => after = Some(JobId(next)),
            None => break,
        }
    }
    found.reverse();
    assert_eq!(ids(&found), ids(&listed));
    assert!(pages >= 3, "six ids, two at a time");

    let processing = JobFilter {
        status: Some(JobStatus::Processing),
        limit: 10,
        ..Default::default()
    };
    let running = store.job_list(processing).await.unwrap().items;
    assert_eq!(
        running.iter().map(|j| j.priority).collect::<Vec<_>>(),
        [3, 4]
    );
}

pub async fn stats_by_status_and_type(store: Arc<dyn Store>) {
    let empty = store.job_stats(T0).await.unwrap();
    assert_eq!(empty.count(JobStatus::Pending), 0);
    assert_eq!(empty.oldest_ready_age_ms, None);

    store
        .job_insert(NewJob::new("a", json!({}), T0))
        .await
        .unwrap();
    store
        .job_insert(NewJob::new("a", json!({}), T0).priority(1))
        .await
        .unwrap();
    store
        .job_insert(NewJob::new("b", json!({}), T0).scheduled_at(at(secs(100))))
        .await
        .unwrap();
    claim(&store, "w", 1, at(secs(3))).await;

    let stats = store.job_stats(at(secs(3))).await.unwrap();
    assert_eq!(stats.count(JobStatus::Pending), 2);
    assert_eq!(stats.count(JobStatus::Processing), 1);
    assert_eq!(stats.count(JobStatus::Failed), 0);
    assert_eq!(stats.by_type["a"][&JobStatus::Processing], 1);
    assert_eq!(stats.by_type["a"][&JobStatus::Pending], 1);
    assert_eq!(stats.by_type["b"][&JobStatus::Pending], 1);
    assert_eq!(
        stats.oldest_ready_age_ms,
        Some(3_000),
        "the scheduled job is not due, so not counted"
    );
}

pub async fn bulk_insert_hundred_thousand(store: Arc<dyn Store>) {
    let jobs: Vec<NewJob> = (0..100_000)
        .map(|i| NewJob::new("bulk", json!({ "i": i }), T0))
        .collect();
    let ids = insert_ids(&store, jobs).await;
    assert_eq!(ids.len(), 100_000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        store.job_stats(T0).await.unwrap().count(JobStatus::Pending),
        100_000
    );
    let last = store.job_get(ids[99_999]).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&last.payload).unwrap(),
        json!({"i": 99_999})
    );
    assert!(store.job_insert_many(Vec::new()).await.unwrap().is_empty());
}

pub async fn leader_lease_is_exclusive_until_expiry(store: Arc<dyn Store>) {
    let lease = |owner, now| LeaderParams {
        name: "maintenance",
        owner,
        now,
        ttl: secs(10),
    };
    assert!(store.leader_acquire(lease("a", T0)).await.unwrap());
    assert!(!store.leader_acquire(lease("b", at(secs(5)))).await.unwrap());
    assert!(
        store.leader_acquire(lease("a", at(secs(8)))).await.unwrap(),
        "the owner renews"
    );
    assert!(
        !store
            .leader_acquire(lease("b", at(secs(17))))
            .await
            .unwrap(),
        "renewed until 18s"
    );
    assert!(
        store
            .leader_acquire(lease("b", at(secs(18))))
            .await
            .unwrap(),
        "taken over after expiry"
    );
    store.leader_release("maintenance", "a").await.unwrap();
    assert!(
        !store
            .leader_acquire(lease("a", at(secs(19))))
            .await
            .unwrap(),
        "only the owner releases"
    );
    store.leader_release("maintenance", "b").await.unwrap();
    assert!(
        store
            .leader_acquire(lease("a", at(secs(19))))
            .await
            .unwrap()
    );
}

pub async fn next_scheduled_at_tracks_the_ready_set(store: Arc<dyn Store>) {
    assert_eq!(store.job_next_scheduled_at(None).await.unwrap(), None);
    store
        .job_insert(noop(T0).scheduled_at(at(secs(50))))
        .await
        .unwrap();
    store
        .job_insert(noop(T0).scheduled_at(at(secs(20))))
        .await
        .unwrap();
    assert_eq!(
        store.job_next_scheduled_at(None).await.unwrap(),
        Some(at(secs(20)))
    );
    claim(&store, "w", 1, at(secs(20))).await;
    assert_eq!(
        store.job_next_scheduled_at(None).await.unwrap(),
        Some(at(secs(50)))
    );
}

pub async fn prune_deletes_old_finished_jobs_only(store: Arc<dyn Store>) {
    let ids = insert_ids(&store, (0..4).map(|i| noop(T0).priority(10 - i)).collect()).await;
    let (done, failed, cancelled, pending) = (ids[0], ids[1], ids[2], ids[3]);
    let running = claim(&store, "w", 2, T0).await;
    assert_eq!(crate::ids(&running), [done, failed]);
    let completion = Completion {
        id: done,
        attempt: 1,
        result: None,
        writes: None,
    };
    store
        .job_complete_many(at(secs(1)), vec![completion])
        .await
        .unwrap();
    let failure = Failure {
        id: failed,
        attempt: 1,
        error: "boom".into(),
        retry_at: None,
    };
    store
        .job_fail_many(at(secs(1)), vec![failure])
        .await
        .unwrap();
    store.job_cancel(cancelled, at(secs(2))).await.unwrap();

    assert_eq!(
        store.job_prune(at(secs(1)), 10).await.unwrap(),
        0,
        "not yet old"
    );
    assert_eq!(
        store.job_prune(at(secs(60)), 1).await.unwrap(),
        1,
        "a batch at a time"
    );
    assert!(
        matches!(store.job_get(done).await, Err(StoreError::NotFound)),
        "oldest first"
    );
    assert_eq!(store.job_prune(at(secs(60)), 10).await.unwrap(), 1);
    assert!(matches!(
        store.job_get(cancelled).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.job_prune(at(secs(60)), 10).await.unwrap(), 0);
    assert_eq!(
        store.job_get(failed).await.unwrap().status,
        JobStatus::Failed
    );
    assert_eq!(
        store.job_get(pending).await.unwrap().status,
        JobStatus::Pending
    );
}
