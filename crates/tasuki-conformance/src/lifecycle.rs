//! Leases, heartbeats, rescue, fencing, failures and retries.

use std::sync::Arc;

use serde_json::json;
use tasuki_core::{Completion, Failure, JobStatus, Release, Store, StoreError};

use crate::{LEASE, T0, at, claim, insert_ids, noop, secs};

pub async fn lease_expiry_and_rescue(store: Arc<dyn Store>) {
    let id = store.job_insert(noop(T0)).await.unwrap().job.id;
    let job = claim(&store, "dead-worker", 1, T0).await.remove(0);
    assert!(
        store
            .job_rescue_expired(at(LEASE - secs(1)), 100)
            .await
            .unwrap()
            .is_empty(),
        "lease still live"
    );
    assert!(
        claim(&store, "other", 1, at(secs(1))).await.is_empty(),
        "a leased job is not claimable"
    );

    let rescued = store.job_rescue_expired(at(LEASE), 100).await.unwrap();
    assert_eq!(rescued, [id]);
    let job_after = store.job_get(id).await.unwrap();
    assert_eq!(job_after.status, JobStatus::RetryPending);
    assert_eq!(job_after.retry_count, 1);
    // Due in its old place, like a released job.
    assert_eq!(job_after.scheduled_at, job.scheduled_at);
    assert_eq!(job_after.errors.len(), 1);
    assert_eq!(job_after.errors[0].attempt, job.attempt);
    assert_eq!(job_after.errors[0].error, "lease expired");

    // A claim that read its clock before the rescue, and runs after it,
    // takes the rescued job.
    let again = claim(&store, "other", 1, at(LEASE - secs(1))).await;
    assert_eq!(again[0].id, id);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].lease_owner.as_deref(), Some("other"));
}

pub async fn rescue_without_retries_left_fails(store: Arc<dyn Store>) {
    let id = store
        .job_insert(noop(T0).max_retries(0))
        .await
        .unwrap()
        .job
        .id;
    claim(&store, "w", 1, T0).await;
    assert_eq!(
        store
            .job_rescue_expired(at(LEASE + secs(1)), 100)
            .await
            .unwrap(),
        [id]
    );
    let job = store.job_get(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.retry_count, 0);
    assert_eq!(job.completed_at, Some(at(LEASE + secs(1))));
    assert_eq!(job.error_message.as_deref(), Some("lease expired"));
}

/// An attempt whose lease expired, or was taken over, can no longer write.
pub async fn fencing_rejects_stale_attempts(store: Arc<dyn Store>) {
    let id = store.job_insert(noop(T0)).await.unwrap().job.id;
    let first = claim(&store, "slow", 1, T0).await.remove(0);
    // Expired but not yet rescued: still rejected.
    let late = Completion {
        id,
        attempt: first.attempt,
        result: None,
        writes: None,
    };
    assert!(
        store
            .job_complete_many(at(LEASE), vec![late.clone()])
            .await
            .unwrap()
            .ids
            .is_empty()
    );

    store.job_rescue_expired(at(LEASE), 10).await.unwrap();
    let second = claim(&store, "fast", 1, at(LEASE)).await.remove(0);
    assert_eq!(second.attempt, first.attempt + 1);

    let stale_fail = Failure {
        id,
        attempt: first.attempt,
        error: "late".into(),
        retry_at: None,
    };
    assert!(
        store
            .job_fail_many(at(LEASE + secs(1)), vec![stale_fail])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .job_complete_many(at(LEASE + secs(1)), vec![late])
            .await
            .unwrap()
            .ids
            .is_empty()
    );
    let stale_release = Release {
        id,
        attempt: first.attempt,
    };
    assert!(
        store
            .job_release_many(at(LEASE + secs(1)), vec![stale_release])
            .await
            .unwrap()
            .is_empty()
    );

    let done = Completion {
        id,
        attempt: second.attempt,
        result: Some(json!({"ok": true})),
        writes: None,
    };
    assert_eq!(
        store
            .job_complete_many(at(LEASE + secs(2)), vec![done.clone()])
            .await
            .unwrap()
            .ids,
        [id]
    );
    let job = store.job_get(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result, Some(json!({"ok": true})));
    assert_eq!(job.completed_at, Some(at(LEASE + secs(2))));
    // Completing twice changes nothing.
    assert!(
        store
            .job_complete_many(at(LEASE + secs(3)), vec![done])
            .await
            .unwrap()
            .ids
            .is_empty()
    );
    assert_eq!(
        store.job_get(id).await.unwrap().completed_at,
        Some(at(LEASE + secs(2)))
    );
}

pub async fn heartbeat_extends_only_live_leases_of_owner(store: Arc<dyn Store>) {
    let jobs = (0..3).map(|_| noop(T0)).collect();
    let ids = insert_ids(&store, jobs).await;
    claim(&store, "a", 2, T0).await;
    claim(&store, "b", 1, T0).await;
    // a renews the jobs it names, and only those it holds (not b's ids[2]).
    let extended = store
        .job_heartbeat("a", &ids, at(secs(10)), at(secs(100)))
        .await
        .unwrap();
    assert_eq!(extended, 2);
    assert_eq!(
        store.job_get(ids[0]).await.unwrap().lease_expires_at,
        Some(at(secs(100)))
    );
    assert_eq!(
        store.job_get(ids[2]).await.unwrap().lease_expires_at,
        Some(at(LEASE))
    );
    // A job a stopped naming (its outcome could not be written) is let go.
    let renewed = store
        .job_heartbeat("a", &ids[..1], at(secs(90)), at(secs(150)))
        .await
        .unwrap();
    assert_eq!(renewed, 1);
    assert_eq!(
        store.job_get(ids[1]).await.unwrap().lease_expires_at,
        Some(at(secs(100)))
    );
    // b's lease has expired: a heartbeat does not bring it back.
    assert_eq!(
        store
            .job_heartbeat("b", &ids, at(LEASE), at(secs(200)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .job_rescue_expired(at(LEASE + secs(1)), 10)
            .await
            .unwrap(),
        [ids[2]]
    );
    assert_eq!(
        store
            .job_heartbeat("a", &[], at(LEASE), at(secs(200)))
            .await
            .unwrap(),
        0
    );
}

pub async fn release_spends_no_retry(store: Arc<dyn Store>) {
    let id = store.job_insert(noop(T0)).await.unwrap().job.id;
    let job = claim(&store, "w", 1, T0).await.remove(0);
    let released = store
        .job_release_many(
            at(secs(1)),
            vec![Release {
                id,
                attempt: job.attempt,
            }],
        )
        .await
        .unwrap();
    assert_eq!(released, [id]);
    let job = store.job_get(id).await.unwrap();
    assert_eq!(
        (job.status, job.retry_count, job.scheduled_at),
        (JobStatus::Pending, 0, T0)
    );
    assert!(job.errors.is_empty());
    assert_eq!(claim(&store, "w", 1, at(secs(1))).await[0].attempt, 2);
}

pub async fn failure_with_retry_and_without(store: Arc<dyn Store>) {
    let ids = insert_ids(&store, vec![noop(T0), noop(T0)]).await;
    let claimed = claim(&store, "w", 2, T0).await;
    let failures = vec![
        Failure {
            id: ids[0],
            attempt: claimed[0].attempt,
            error: "flaky".into(),
            retry_at: Some(at(secs(5))),
        },
        Failure {
            id: ids[1],
            attempt: claimed[1].attempt,
            error: "hopeless".into(),
            retry_at: None,
        },
    ];
    assert_eq!(
        store.job_fail_many(at(secs(1)), failures).await.unwrap(),
        ids
    );

    let retrying = store.job_get(ids[0]).await.unwrap();
    assert_eq!(retrying.status, JobStatus::RetryPending);
    assert_eq!(retrying.retry_count, 1);
    assert_eq!(retrying.scheduled_at, at(secs(5)));
    assert_eq!(retrying.error_message.as_deref(), Some("flaky"));
    assert_eq!(retrying.errors.len(), 1);
    assert_eq!(retrying.errors[0].at, at(secs(1)));
    assert_eq!(retrying.completed_at, None);

    let failed = store.job_get(ids[1]).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.retry_count, 0);
    assert_eq!(failed.completed_at, Some(at(secs(1))));
    assert_eq!(failed.error_message.as_deref(), Some("hopeless"));

    assert!(
        claim(&store, "w", 10, at(secs(4))).await.is_empty(),
        "backoff is persisted"
    );
    let again = claim(&store, "w", 10, at(secs(5))).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempt), (ids[0], 2));
}

pub async fn retry_of_failed_job(store: Arc<dyn Store>) {
    let id = store
        .job_insert(noop(T0).max_retries(0))
        .await
        .unwrap()
        .job
        .id;
    let err = store.job_retry(id, T0).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "a pending job cannot be retried: {err:?}"
    );
    let job = claim(&store, "w", 1, T0).await.remove(0);
    let failure = Failure {
        id,
        attempt: job.attempt,
        error: "boom".into(),
        retry_at: None,
    };
    store
        .job_fail_many(at(secs(1)), vec![failure])
        .await
        .unwrap();

    let retried = store.job_retry(id, at(secs(2))).await.unwrap();
    assert_eq!(retried.status, JobStatus::Pending);
    assert_eq!(retried.scheduled_at, at(secs(2)));
    assert_eq!(retried.completed_at, None);
    assert_eq!(retried.errors.len(), 1, "the history stays");
    assert_eq!(claim(&store, "w", 1, at(secs(2))).await[0].id, id);
    assert!(matches!(
        store.job_retry(tasuki_core::JobId(9_999_999), T0).await,
        Err(StoreError::NotFound)
    ));
}
