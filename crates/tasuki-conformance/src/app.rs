//! Users with their jobs in one transaction; the application's own tables;
//! a job's writes committed with its completion.

use std::sync::Arc;

use serde_json::json;
use tasuki_core::{
    AgeFilter, Completion, Job, JobCheck, JobFilter, JobStatus, NewJob, NewUser, Onboarding, Store,
    StoreError, User, UserProfile, Writes,
};

use crate::{LEASE, T0, at, claim, noop, secs};

pub fn new_user(email: &str, age: i64) -> NewUser {
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
        delivery: NewJob::new("send_email", json!(null), at(secs(5))).priority(2),
        now: at(secs(5)),
    }
}

/// A user and its `user_created` job, claimed by `owner` at `now`.
async fn claimed_signup(store: &Arc<dyn Store>, email: &str, owner: &str) -> (User, Job) {
    let (user, _) = store
        .user_insert_with_job(
            new_user(email, 41),
            Box::new(|u: &User| NewJob::new("user_created", json!({"user_id": u.id}), T0)),
            T0,
        )
        .await
        .unwrap();
    let job = claim(store, owner, 1, T0).await.remove(0);
    assert_eq!(job.job_type, "user_created");
    (user, job)
}

fn completing(job: &Job, writes: Writes) -> Completion {
    Completion {
        id: job.id,
        attempt: job.attempt,
        result: Some(json!({"done": true})),
        writes: Some(writes),
    }
}

async fn jobs_of_type(store: &Arc<dyn Store>, job_type: &str) -> Vec<Job> {
    let filter = JobFilter {
        job_type: Some(job_type.into()),
        limit: 100,
        ..Default::default()
    };
    store.job_list(filter).await.unwrap().items
}

/// A job's writes commit in the transaction that completes it: the
/// onboarding's profile, email, statistics and delivery job appear with the
/// completion.
pub async fn writes_commit_with_the_completion(store: Arc<dyn Store>) {
    let (user, job) = claimed_signup(&store, "new@example.com", "w").await;
    let writes = store.user_onboarding(onboarding(user.id, "europe"));
    let completed = store
        .job_complete_many(at(secs(5)), vec![completing(&job, writes)])
        .await
        .unwrap();
    assert_eq!(completed.ids, [job.id]);
    assert!(completed.failed_writes.is_empty());

    let done = store.job_get(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.result, Some(json!({"done": true})));
    let profile = store.user_profile_get(user.id).await.unwrap();
    assert_eq!(profile.region.as_deref(), Some("europe"));
    assert_eq!(
        store.signup_stats().await.unwrap(),
        [(at(secs(5)).utc_day(), 1)]
    );
    let deliveries = jobs_of_type(&store, "send_email").await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (deliveries[0].status, deliveries[0].priority),
        (JobStatus::Pending, 2)
    );
    let payload: serde_json::Value = serde_json::from_str(&deliveries[0].payload).unwrap();
    let outbox = payload["outbox_id"].as_i64().expect("the email's id");
    let email = store.email_get(outbox).await.unwrap();
    assert_eq!(
        (email.recipient.as_str(), email.kind.as_str(), email.sent_at),
        ("new@example.com", "welcome", None)
    );

    // The delivery job's own writes mark the email sent.
    let delivery = claim(&store, "w", 1, at(secs(6))).await.remove(0);
    let sent = store.email_sent(outbox, at(secs(7)));
    let completed = store
        .job_complete_many(at(secs(7)), vec![completing(&delivery, sent)])
        .await
        .unwrap();
    assert_eq!(completed.ids, [delivery.id]);
    assert_eq!(
        store.email_get(outbox).await.unwrap().sent_at,
        Some(at(secs(7)))
    );
    assert_eq!(store.user_ages(AgeFilter::default()).await.unwrap(), [41]);
}

/// An attempt whose lease was lost writes nothing: neither its completion
/// nor its writes commit, and the attempt that took over does both.
pub async fn writes_of_a_lost_lease_do_not_commit(store: Arc<dyn Store>) {
    let (user, first) = claimed_signup(&store, "late@example.com", "slow").await;
    store.job_rescue_expired(at(LEASE), 10).await.unwrap();
    let second = claim(&store, "fast", 1, at(LEASE)).await.remove(0);
    assert_eq!((second.id, second.attempt), (first.id, first.attempt + 1));

    let late = store.user_onboarding(onboarding(user.id, "late"));
    let completed = store
        .job_complete_many(at(LEASE + secs(1)), vec![completing(&first, late)])
        .await
        .unwrap();
    assert!(completed.ids.is_empty() && completed.failed_writes.is_empty());
    assert!(matches!(
        store.user_profile_get(user.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(jobs_of_type(&store, "send_email").await.is_empty());
    assert!(store.signup_stats().await.unwrap().is_empty());

    let current = store.user_onboarding(onboarding(user.id, "current"));
    let completed = store
        .job_complete_many(at(LEASE + secs(2)), vec![completing(&second, current)])
        .await
        .unwrap();
    assert_eq!(completed.ids, [second.id]);
    let profile = store.user_profile_get(user.id).await.unwrap();
    assert_eq!(profile.region.as_deref(), Some("current"));
    assert_eq!(jobs_of_type(&store, "send_email").await.len(), 1);
}

/// Refuses one job type, as a registry refuses a payload.
struct Refuse(&'static str);

impl JobCheck for Refuse {
    fn check(&self, job: &mut NewJob) -> Result<(), String> {
        if job.job_type == self.0 {
            Err(format!("`{}` is refused", self.0))
        } else {
            Ok(())
        }
    }
}

/// Completions of one batch commit together, and writes that fail roll back
/// alone: a gone user's onboarding, and one whose delivery job its check
/// refuses, leave nothing and are reported; the others commit.
pub async fn failing_writes_roll_back_alone(store: Arc<dyn Store>) {
    let (kept, kept_job) = claimed_signup(&store, "kept@example.com", "w").await;
    let (refused, refused_job) = claimed_signup(&store, "refused@example.com", "w").await;
    let (_, gone_job) = claimed_signup(&store, "gone@example.com", "w").await;
    store.job_insert(noop(T0)).await.unwrap();
    let plain = claim(&store, "w", 1, T0).await.remove(0);

    let batch = vec![
        completing(&gone_job, store.user_onboarding(onboarding(987_654, "x"))),
        completing(
            &kept_job,
            store.user_onboarding(onboarding(kept.id, "kept")),
        ),
        completing(
            &refused_job,
            store
                .user_onboarding(onboarding(refused.id, "refused"))
                .checked_by(Arc::new(Refuse("send_email"))),
        ),
        Completion {
            id: plain.id,
            attempt: plain.attempt,
            result: None,
            writes: None,
        },
    ];
    let completed = store.job_complete_many(at(secs(5)), batch).await.unwrap();
    let mut expected = vec![kept_job.id, plain.id];
    expected.sort_unstable();
    assert_eq!(completed.ids, expected);
    let failed: Vec<_> = completed
        .failed_writes
        .iter()
        .map(|(id, e)| (*id, e))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|(id, e)| *id == gone_job.id && matches!(e, StoreError::NotFound))
    );
    assert!(
        failed
            .iter()
            .any(|(id, e)| *id == refused_job.id && matches!(e, StoreError::Rejected(_)))
    );

    for job in [&gone_job, &refused_job] {
        assert_eq!(
            store.job_get(job.id).await.unwrap().status,
            JobStatus::Processing
        );
    }
    assert!(matches!(
        store.user_profile_get(refused.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .user_profile_get(kept.id)
            .await
            .unwrap()
            .region
            .as_deref(),
        Some("kept")
    );
    assert_eq!(jobs_of_type(&store, "send_email").await.len(), 1);
    assert_eq!(
        store.signup_stats().await.unwrap(),
        [(at(secs(5)).utc_day(), 1)]
    );
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
