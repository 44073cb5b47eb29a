//! Users with their jobs in one transaction; the application's own tables.

use std::sync::Arc;

use serde_json::json;
use tasuki_core::{
    AgeFilter, JobFilter, JobStatus, NewJob, NewUser, Onboarding, Store, StoreError, UserProfile,
};

use crate::{T0, at, secs};

pub(crate) fn new_user(email: &str, age: i64) -> NewUser {
    NewUser {
        email: email.into(),
        age,
        name: Some("Ada".into()),
        bio: None,
        is_active: true,
        additional_data: None,
    }
}

async fn job_count(store: &Arc<dyn Store>) -> usize {
    store
        .job_list(JobFilter {
            limit: 1_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .items
        .len()
}

pub async fn transaction_commits_or_rolls_back_together(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    let user = tx
        .user_insert(new_user("gone@example.com", 30), T0)
        .await
        .unwrap();
    tx.job_insert(NewJob::new("user_created", json!({"user_id": user.id}), T0))
        .await
        .unwrap();
    drop(tx);
    assert!(matches!(
        store.user_get(user.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        job_count(&store).await,
        0,
        "a dropped transaction leaves no job"
    );

    let mut extra = serde_json::Map::new();
    extra.insert("hobby".into(), json!("chess"));
    let mut tx = store.begin().await.unwrap();
    let user = tx
        .user_insert(
            NewUser {
                additional_data: Some(extra.clone()),
                ..new_user("kept@example.com", 30)
            },
            T0,
        )
        .await
        .unwrap();
    let job = tx
        .job_insert(NewJob::new("user_created", json!({"user_id": user.id}), T0).priority(1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let page = store.user_list(0, 10).await.unwrap();
    assert_eq!((page.items.len(), page.next_after), (1, None));
    assert_eq!(store.user_list(user.id, 10).await.unwrap().items.len(), 0);
    let stored = store.user_get(user.id).await.unwrap();
    assert_eq!(stored, user);
    assert_eq!(stored.additional_data, Some(extra));
    assert_eq!(
        (stored.email.as_str(), stored.age, stored.created_at),
        ("kept@example.com", 30, T0)
    );
    assert_eq!(store.job_get(job.id).await.unwrap().priority, 1);
}

pub async fn duplicate_email_is_refused(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    tx.user_insert(new_user("twice@example.com", 20), T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .user_insert(new_user("twice@example.com", 21), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");
}

fn onboarding(user_id: i64, region: &str) -> Onboarding {
    Onboarding {
        user_id,
        profile: UserProfile {
            recommendation_tags: vec!["chess-clubs".into()],
            region: Some(region.into()),
            rank: Some("gold".into()),
        },
        email_kind: "welcome".into(),
        email_subject: "Welcome".into(),
        email_body: "Hello".into(),
        delivery_job_type: "send_email".into(),
        now: at(secs(5)),
    }
}

/// However often the `user_created` job runs, the user gets one email, one
/// delivery job and one count in the signup statistics.
pub async fn onboarding_is_applied_once(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    let user = tx
        .user_insert(new_user("new@example.com", 41), T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let first = store
        .user_onboard(onboarding(user.id, "europe"))
        .await
        .unwrap();
    assert!(first.first_time);
    let second = store
        .user_onboard(onboarding(user.id, "asia"))
        .await
        .unwrap();
    assert!(!second.first_time);
    assert_eq!(first.outbox_id, second.outbox_id);

    let email = store.email_get(first.outbox_id).await.unwrap();
    assert_eq!(
        (email.recipient.as_str(), email.kind.as_str(), email.sent_at),
        ("new@example.com", "welcome", None)
    );
    let profile = store.user_profile_get(user.id).await.unwrap();
    assert_eq!(
        profile.region.as_deref(),
        Some("asia"),
        "the profile follows the latest run"
    );
    assert_eq!(store.signup_stats().await.unwrap(), [(T0.utc_day(), 1)]);
    let deliveries = store
        .job_list(JobFilter {
            job_type: Some("send_email".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, JobStatus::Pending);
    let payload: serde_json::Value = serde_json::from_str(&deliveries[0].payload).unwrap();
    assert_eq!(payload, json!({"outbox_id": first.outbox_id}));

    assert!(matches!(
        store.user_onboard(onboarding(987_654, "x")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.user_ages(AgeFilter::default()).await.unwrap(), [41]);
}

pub async fn email_is_marked_sent_once(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    let young = tx
        .user_insert(new_user("young@example.com", 18), T0)
        .await
        .unwrap();
    tx.user_insert(new_user("old@example.com", 70), T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let outbox = store
        .user_onboard(onboarding(young.id, "europe"))
        .await
        .unwrap()
        .outbox_id;
    assert!(store.email_mark_sent(outbox, at(secs(9))).await.unwrap());
    assert!(!store.email_mark_sent(outbox, at(secs(10))).await.unwrap());
    assert_eq!(
        store.email_get(outbox).await.unwrap().sent_at,
        Some(at(secs(9)))
    );
    let cohort = AgeFilter {
        min_age: Some(18),
        max_age: Some(65),
    };
    assert_eq!(store.user_ages(cohort).await.unwrap(), [18]);
}

/// Concurrent signups: each user commits with its job; a duplicate email
/// fails alone and leaves nothing behind.
pub async fn signups_commit_each_user_with_its_job(store: Arc<dyn Store>) {
    let signups = (0..50).map(|n| {
        let store = store.clone();
        let email = if n == 49 {
            "n0@example.com".to_owned()
        } else {
            format!("n{n}@example.com")
        };
        tokio::spawn(async move {
            let job: tasuki_core::JobFor = Box::new(|user| {
                NewJob::new("user_created", json!({"user_id": user.id}), T0).priority(1)
            });
            store
                .user_insert_with_job(new_user(&email, n), job, T0)
                .await
        })
    });
    let mut created = Vec::new();
    let mut duplicates = 0;
    for signup in signups.collect::<Vec<_>>() {
        match signup.await.unwrap() {
            Ok((user, job)) => {
                let job = store.job_get(job).await.unwrap();
                let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
                assert_eq!(payload["user_id"], user.id);
                assert_eq!(job.priority, 1);
                assert_eq!(store.user_get(user.id).await.unwrap(), user);
                created.push(user.id);
            }
            Err(StoreError::Duplicate(_)) => duplicates += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((created.len(), duplicates), (49, 1));
    assert_eq!(store.user_list(0, 100).await.unwrap().items.len(), 49);
    assert_eq!(job_count(&store).await, 49, "the duplicate left no job");
}

/// A job builder that panics fails its signup (with the others committed in
/// the same batch) and writes nothing of it; the store goes on.
pub async fn a_panicking_job_builder_fails_its_batch_and_the_store_goes_on(store: Arc<dyn Store>) {
    let bad: tasuki_core::JobFor = Box::new(|_| panic!("the job builder broke"));
    let refused = store
        .user_insert_with_job(new_user("bad@example.com", 1), bad, T0)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Database(_))),
        "{refused:?}"
    );
    assert!(
        store.user_list(0, 10).await.unwrap().items.is_empty(),
        "nothing of it was written"
    );
    let good: tasuki_core::JobFor =
        Box::new(|user| NewJob::new("user_created", json!({"user_id": user.id}), T0));
    let (user, _) = store
        .user_insert_with_job(new_user("bad@example.com", 1), good, T0)
        .await
        .unwrap();
    assert_eq!(
        store.user_get(user.id).await.unwrap().email,
        "bad@example.com"
    );
}
