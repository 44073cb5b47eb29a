//! The application's store on each engine: users with their jobs in one
//! transaction, onboarding committed with its job's completion, and the
//! statements and payload schemas checked against the schema and contract.

use std::sync::Arc;

use serde_json::json;
use tasuki_app::{AgeFilter, AppStore, JobFor, NewUser, Onboarding, PgApp, SqliteApp, UserProfile};
use tasuki_conformance::{Backend, Engine, TestDb};
use tasuki_core::{
    ClaimParams, Completion, Job, JobFilter, JobStatus, NewJob, Store, StoreError, Timestamp,
};

const T0: Timestamp = Timestamp::from_micros(1_767_225_600_000_000);

struct Env {
    store: Arc<dyn Store>,
    app: Arc<dyn AppStore>,
    _db: TestDb,
}

impl Env {
    /// A fresh database; `engine_tests!` has checked that the engine is up.
    async fn new(engine: Engine) -> Self {
        let db = tasuki_conformance::fresh(engine)
            .await
            .expect("engine_tests! runs a test only where its engine is up");
        let app: Arc<dyn AppStore> = match &db.backend {
            Backend::Sqlite(store) => Arc::new(SqliteApp::open(store.clone()).await.unwrap()),
            Backend::Postgres(store) => Arc::new(PgApp::open(store.clone()).await.unwrap()),
        };
        Self {
            store: db.store.clone(),
            app,
            _db: db,
        }
    }

    async fn jobs(&self, job_type: Option<&str>) -> Vec<Job> {
        let filter = JobFilter {
            job_type: job_type.map(str::to_owned),
            limit: 1_000,
            ..Default::default()
        };
        self.store.job_list(filter).await.unwrap().items
    }

    async fn claim(&self, now: Timestamp) -> Job {
        let claimed = self
            .store
            .job_claim(ClaimParams {
                owner: "w",
                queue: None,
                limit: 1,
                now,
                lease_expires_at: now.saturating_add(std::time::Duration::from_secs(30)),
            })
            .await
            .unwrap();
        claimed.into_iter().next().expect("a due job")
    }
}

fn new_user(email: &str, age: i64) -> NewUser {
    NewUser {
        email: email.into(),
        age,
        name: Some("Ada".into()),
        bio: None,
        is_active: true,
        additional_data: None,
    }
}

fn user_created() -> JobFor {
    Box::new(|user| NewJob::new("user_created", json!({"user_id": user.id}), T0).priority(1))
}

async fn users_are_stored_with_their_job(engine: Engine) {
    let env = Env::new(engine).await;
    let mut extra = serde_json::Map::new();
    extra.insert("hobby".into(), json!("chess"));
    let user = NewUser {
        additional_data: Some(extra.clone()),
        ..new_user("kept@example.com", 30)
    };
    let (user, job) = env
        .app
        .user_insert_with_job(user, user_created(), T0)
        .await
        .unwrap();
    let page = env.app.user_list(0, 10).await.unwrap();
    assert_eq!((page.items.len(), page.next_after), (1, None));
    assert_eq!(env.app.user_list(user.id, 10).await.unwrap().items.len(), 0);
    let stored = env.app.user_get(user.id).await.unwrap();
    assert_eq!(stored, user);
    assert_eq!(stored.additional_data, Some(extra));
    assert_eq!(
        (stored.email.as_str(), stored.age, stored.created_at),
        ("kept@example.com", 30, T0)
    );
    assert_eq!(env.store.job_get(job).await.unwrap().priority, 1);
    assert!(matches!(
        env.app.user_get(user.id + 1).await,
        Err(StoreError::NotFound)
    ));
}

async fn duplicate_email_is_refused(engine: Engine) {
    let env = Env::new(engine).await;
    let user = || new_user("twice@example.com", 20);
    env.app
        .user_insert_with_job(user(), user_created(), T0)
        .await
        .unwrap();
    let err = env
        .app
        .user_insert_with_job(user(), user_created(), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");
    assert_eq!(env.jobs(None).await.len(), 1, "the duplicate left no job");
}

/// Concurrent signups: each user commits with its job; a duplicate email
/// fails alone and leaves nothing behind.
async fn signups_commit_each_user_with_its_job(engine: Engine) {
    let env = Env::new(engine).await;
    let signups = (0..50).map(|n| {
        let app = env.app.clone();
        let email = if n == 49 {
            "n0@example.com".to_owned()
        } else {
            format!("n{n}@example.com")
        };
        tokio::spawn(async move {
            app.user_insert_with_job(new_user(&email, n), user_created(), T0)
                .await
        })
    });
    let mut created = Vec::new();
    let mut duplicates = 0;
    for signup in signups.collect::<Vec<_>>() {
        match signup.await.unwrap() {
            Ok((user, job)) => {
                let job = env.store.job_get(job).await.unwrap();
                let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
                assert_eq!(payload["user_id"], user.id);
                assert_eq!(job.priority, 1);
                assert_eq!(env.app.user_get(user.id).await.unwrap(), user);
                created.push(user.id);
            }
            Err(StoreError::Duplicate(_)) => duplicates += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((created.len(), duplicates), (49, 1));
    assert_eq!(env.app.user_list(0, 100).await.unwrap().items.len(), 49);
    assert_eq!(env.jobs(None).await.len(), 49, "the duplicate left no job");
}

/// A job builder that panics fails its signup (with the others committed in
/// the same batch) and writes nothing of it; the store goes on.
async fn a_panicking_job_builder_fails_its_signup_and_the_store_goes_on(engine: Engine) {
    let env = Env::new(engine).await;
    let bad: JobFor = Box::new(|_| panic!("the job builder broke"));
    let refused = env
        .app
        .user_insert_with_job(new_user("bad@example.com", 1), bad, T0)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Database(_))),
        "{refused:?}"
    );
    assert!(
        env.app.user_list(0, 10).await.unwrap().items.is_empty(),
        "nothing of it was written"
    );
    let (user, _) = env
        .app
        .user_insert_with_job(new_user("bad@example.com", 1), user_created(), T0)
        .await
        .unwrap();
    assert_eq!(
        env.app.user_get(user.id).await.unwrap().email,
        "bad@example.com"
    );
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
        delivery: NewJob::new("send_email", json!(null), T0).priority(2),
        now: T0,
    }
}

fn completing(job: &Job, writes: tasuki_core::Writes) -> Completion {
    Completion {
        id: job.id,
        attempt: job.attempt,
        result: None,
        writes: Some(writes),
    }
}

/// Onboarding commits with its job's completion: the profile, one welcome
/// email and its delivery job, the user counted in the day's signups. A second onboarding of the
/// same user updates the profile and sends no second email; the delivery
/// job's writes mark the email sent.
async fn onboarding_commits_with_the_completion(engine: Engine) {
    let env = Env::new(engine).await;
    let (user, _) = env
        .app
        .user_insert_with_job(new_user("new@example.com", 41), user_created(), T0)
        .await
        .unwrap();
    env.app
        .user_insert_with_job(new_user("twice@example.com", 42), user_created(), T0)
        .await
        .unwrap();
    let onboard = async |region: &str| {
        let job = env.claim(T0).await;
        assert_eq!(job.job_type, "user_created");
        let writes = env.app.user_onboarding(onboarding(user.id, region));
        let completed = env
            .store
            .job_complete_many(T0, vec![completing(&job, writes)])
            .await
            .unwrap();
        assert_eq!(completed.ids, [job.id]);
    };
    onboard("europe").await;
    let deliveries = env.jobs(Some("send_email")).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].priority, 2);
    let payload: serde_json::Value = serde_json::from_str(&deliveries[0].payload).unwrap();
    let outbox = payload["outbox_id"].as_i64().unwrap();
    let email = env.app.email_get(outbox).await.unwrap();
    assert_eq!(
        (email.recipient.as_str(), email.kind.as_str(), email.sent_at),
        ("new@example.com", "welcome", None)
    );

    let delivery = env.claim(T0).await;
    assert_eq!(
        delivery.id, deliveries[0].id,
        "the email outranks onboarding"
    );
    let sent = env.app.email_sent(outbox, T0);
    env.store
        .job_complete_many(T0, vec![completing(&delivery, sent)])
        .await
        .unwrap();
    assert_eq!(env.app.email_get(outbox).await.unwrap().sent_at, Some(T0));
    assert_eq!(
        env.store.job_get(delivery.id).await.unwrap().status,
        JobStatus::Completed
    );

    // The same user onboarded by another job: a new profile, no second email.
    onboard("asia").await;
    let profile = env.app.user_profile_get(user.id).await.unwrap();
    assert_eq!(profile.region.as_deref(), Some("asia"));
    assert_eq!(env.app.signup_stats().await.unwrap(), [(T0.utc_day(), 1)]);
    assert_eq!(
        env.jobs(Some("send_email")).await.len(),
        1,
        "one welcome email"
    );

    env.store
        .job_insert(NewJob::new("user_created", json!({}), T0))
        .await
        .unwrap();
    let gone = env.app.user_onboarding(onboarding(987_654, "x"));
    let job = env.claim(T0).await;
    let completed = env
        .store
        .job_complete_many(T0, vec![completing(&job, gone)])
        .await
        .unwrap();
    assert!(matches!(
        completed.failed_writes.as_slice(),
        [(_, StoreError::NotFound)]
    ));
    let cohort = AgeFilter {
        min_age: Some(18),
        max_age: Some(41),
    };
    assert_eq!(env.app.user_ages(cohort).await.unwrap(), [41]);
}

/// Onboardings that complete in one batch (on PostgreSQL, in one
/// statement): each user gets its profile and one welcome email, its own
/// subject and body, and a user that two of them onboard gets one email
/// (the first's) and the later profile. In a later batch, one whose user is
/// gone fails alone. The emails, marked sent in one batch, are all sent.
async fn a_batch_of_onboardings_commits_together(engine: Engine) {
    let env = Env::new(engine).await;
    let mut users = Vec::new();
    for (age, email) in (20..).zip(["a@example.com", "b@example.com", "c@example.com"]) {
        let (user, _) = env
            .app
            .user_insert_with_job(new_user(email, age), user_created(), T0)
            .await
            .unwrap();
        users.push(user.id);
    }
    for _ in 0..3 {
        env.store
            .job_insert(NewJob::new("user_created", json!({}), T0))
            .await
            .unwrap();
    }
    let mut jobs = Vec::new();
    for _ in 0..6 {
        jobs.push(env.claim(T0).await);
    }
    let targets = [
        (users[0], "europe"),
        (users[1], "europe"),
        (users[2], "europe"),
        (users[0], "asia"),
        (users[1], "africa"),
        (987_654, "x"),
    ];
    let mut batch: Vec<Completion> = jobs
        .iter()
        .zip(targets)
        .map(|(job, (user, region))| {
            let onboarding = Onboarding {
                email_subject: format!("Welcome {user}"),
                email_body: format!("Hello {user} in {region}"),
                ..onboarding(user, region)
            };
            completing(job, env.app.user_onboarding(onboarding))
        })
        .collect();
    let later = batch.split_off(4);
    let completed = env.store.job_complete_many(T0, batch).await.unwrap();
    assert_eq!(
        completed.ids,
        jobs[..4].iter().map(|job| job.id).collect::<Vec<_>>()
    );
    assert!(completed.failed_writes.is_empty());
    let completed = env.store.job_complete_many(T0, later).await.unwrap();
    assert_eq!(completed.ids, [jobs[4].id]);
    assert!(
        matches!(completed.failed_writes.as_slice(), [(id, StoreError::NotFound)] if *id == jobs[5].id),
        "{:?}",
        completed.failed_writes
    );
    let mut regions = Vec::new();
    for user in &users {
        regions.push(env.app.user_profile_get(*user).await.unwrap().region);
    }
    assert_eq!(
        regions,
        [Some("asia"), Some("africa"), Some("europe")].map(|r| r.map(String::from))
    );
    let deliveries = env.jobs(Some("send_email")).await;
    assert_eq!(deliveries.len(), 3, "one welcome email per user");

    let sent_at = T0.saturating_add(std::time::Duration::from_secs(1));
    let mut outbox_ids = Vec::new();
    let mut batch = Vec::new();
    for _ in 0..3 {
        let delivery = env.claim(T0).await;
        let payload: serde_json::Value = serde_json::from_str(&delivery.payload).unwrap();
        let outbox_id = payload["outbox_id"].as_i64().unwrap();
        batch.push(completing(
            &delivery,
            env.app.email_sent(outbox_id, sent_at),
        ));
        outbox_ids.push(outbox_id);
    }
    let completed = env.store.job_complete_many(sent_at, batch).await.unwrap();
    assert_eq!(completed.ids.len(), 3);
    let mut emails = Vec::new();
    for id in outbox_ids {
        let email = env.app.email_get(id).await.unwrap();
        assert_eq!(email.sent_at, Some(sent_at));
        emails.push((email.recipient, email.subject, email.body));
    }
    emails.sort_unstable();
    let expected: Vec<_> = ["a@example.com", "b@example.com", "c@example.com"]
        .into_iter()
        .zip(&users)
        .map(|(recipient, user)| {
            (
                recipient.to_owned(),
                format!("Welcome {user}"),
                format!("Hello {user} in europe"),
            )
        })
        .collect();
    assert_eq!(emails, expected);
}

/// The set statements themselves, on PostgreSQL. A batch whose set call
/// fails runs again one job at a time, on the plain statements, so the
/// tests above would pass with a broken one: here fresh users get their
/// emails' ids, a user with its welcome email already gets none, a user
/// that is gone no row, and the mark-sent counts the emails it found
/// pending, an email named twice sent at its first time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_set_statements_answer_as_the_plain_ones() {
    let Some(db) = tasuki_conformance::fresh(Engine::Postgres).await else {
        return;
    };
    let Backend::Postgres(store) = &db.backend else {
        panic!("a PostgreSQL database");
    };
    let app = PgApp::open(store.clone()).await.unwrap();
    let mut users = Vec::new();
    for (age, email) in (20..).zip(["a@example.com", "b@example.com"]) {
        let (user, _) = app
            .user_insert_with_job(new_user(email, age), user_created(), T0)
            .await
            .unwrap();
        users.push(user.id);
    }
    let onboard = async |ids: &[i64]| {
        let n = ids.len();
        let mut rows: Vec<(i64, Option<i64>)> =
            sqlx::query_as(include_str!("../postgres/queries/user/onboard_many.sql"))
                .bind(ids)
                .bind(vec![T0.to_datetime(); n])
                .bind(vec![json!(["chess-clubs"]); n])
                .bind(vec![Some("europe"); n])
                .bind(vec![None::<String>; n])
                .bind(vec!["welcome"; n])
                .bind(vec!["Welcome"; n])
                .bind(vec!["Hello"; n])
                .fetch_all(store.pool())
                .await
                .unwrap();
        rows.sort_unstable();
        rows
    };
    let first = onboard(&users).await;
    let outbox: Vec<i64> = first.iter().filter_map(|(_, id)| *id).collect();
    assert_eq!(
        first.iter().map(|(user, _)| *user).collect::<Vec<_>>(),
        users
    );
    assert_eq!(outbox.len(), 2, "{first:?}");
    assert_ne!(outbox[0], outbox[1]);
    assert_eq!(onboard(&[users[0], 987_654]).await, [(users[0], None)]);
    let profile = app.user_profile_get(users[1]).await.unwrap();
    assert_eq!(
        (profile.region.as_deref(), profile.rank),
        (Some("europe"), None)
    );

    let mark_sent = async |ids: &[i64], at: &[Timestamp]| -> i64 {
        let at: Vec<_> = at.iter().map(|t| t.to_datetime()).collect();
        sqlx::query_scalar(include_str!("../postgres/queries/email/mark_sent_many.sql"))
            .bind(ids)
            .bind(at)
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    let (t1, t2) = (
        T0.saturating_add(std::time::Duration::from_secs(1)),
        T0.saturating_add(std::time::Duration::from_secs(2)),
    );
    assert_eq!(
        mark_sent(&[outbox[0], outbox[1], outbox[0]], &[t1, t1, t2]).await,
        2
    );
    assert_eq!(app.email_get(outbox[0]).await.unwrap().sent_at, Some(t1));
    assert_eq!(mark_sent(&[outbox[0]], &[t2]).await, 0);
    assert_eq!(app.email_get(outbox[0]).await.unwrap().sent_at, Some(t1));
}

/// `send_email` jobs that read at once (on PostgreSQL, in one statement)
/// each get their own message; an id with no message is not found.
async fn emails_read_at_once_each_get_their_own(engine: Engine) {
    let env = Env::new(engine).await;
    let recipients = ["a@example.com", "b@example.com", "c@example.com"];
    for (age, recipient) in (20..).zip(recipients) {
        env.app
            .user_insert_with_job(new_user(recipient, age), user_created(), T0)
            .await
            .unwrap();
    }
    let mut completions = Vec::new();
    for _ in recipients {
        let job = env.claim(T0).await;
        let user_id = serde_json::from_str::<serde_json::Value>(&job.payload).unwrap()["user_id"]
            .as_i64()
            .unwrap();
        completions.push(completing(
            &job,
            env.app.user_onboarding(onboarding(user_id, "europe")),
        ));
    }
    env.store.job_complete_many(T0, completions).await.unwrap();
    let mut outbox_ids: Vec<i64> = env
        .jobs(Some("send_email"))
        .await
        .iter()
        .map(|job| {
            serde_json::from_str::<serde_json::Value>(&job.payload).unwrap()["outbox_id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    outbox_ids.sort_unstable();
    let unknown = outbox_ids.last().unwrap() + 1_000;

    let reads = outbox_ids
        .iter()
        .chain([&unknown, &outbox_ids[0]])
        .map(|&id| env.app.email_get(id));
    let read = futures_util::future::join_all(reads).await;
    let got: Vec<_> = read[..3]
        .iter()
        .map(|email| {
            let email = email.as_ref().unwrap();
            (email.id, email.recipient.clone())
        })
        .collect();
    let mut by_recipient = got.clone();
    by_recipient.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        by_recipient
            .iter()
            .map(|(_, r)| r.as_str())
            .collect::<Vec<_>>(),
        recipients,
        "one message per recipient"
    );
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        outbox_ids,
        "each caller gets the message it asked for"
    );
    assert!(matches!(read[3], Err(StoreError::NotFound)));
    assert_eq!(
        read[4].as_ref().unwrap(),
        read[0].as_ref().unwrap(),
        "an id asked twice"
    );
}

tasuki_conformance::engine_tests!(
    users_are_stored_with_their_job,
    emails_read_at_once_each_get_their_own,
    duplicate_email_is_refused,
    signups_commit_each_user_with_its_job,
    a_panicking_job_builder_fails_its_signup_and_the_store_goes_on,
    onboarding_commits_with_the_completion,
    a_batch_of_onboardings_commits_together,
);
