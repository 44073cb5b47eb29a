//! The shipped job types, run by a real worker on each engine.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use tasuki_app::{
    AppStore, EmailMessage, EmailSender, NewUser, PgApp, SqliteApp, UserCreated, registry,
};
use tasuki_conformance::{Backend, Engine, TestDb};
use tasuki_core::{JobFilter, JobId, JobStatus, ManualClock, NewJob, Store, Timestamp};
use tasuki_worker::{JobError, Registry, Worker, WorkerConfig};

const T0: Timestamp = Timestamp::from_micros(1_767_225_600_000_000);

/// Keeps what it was asked to send.
#[derive(Default)]
struct Outbox(Mutex<Vec<EmailMessage>>);

#[async_trait]
impl EmailSender for Outbox {
    async fn send(&self, email: &EmailMessage) -> Result<(), JobError> {
        self.0.lock().unwrap().push(email.clone());
        Ok(())
    }
}

struct Env {
    store: Arc<dyn Store>,
    app: Arc<dyn AppStore>,
    registry: Arc<Registry>,
    worker: Worker,
    sent: Arc<Outbox>,
    _db: TestDb,
}

impl Env {
    /// A fresh database; `engine_tests!` has checked that the engine is up.
    async fn new(engine: Engine) -> Self {
        let db = tasuki_conformance::fresh(engine)
            .await
            .expect("engine_tests! runs a test only where its engine is up");
        let store = db.store.clone();
        let app: Arc<dyn AppStore> = match &db.backend {
            Backend::Sqlite(store) => Arc::new(SqliteApp::open(store.clone()).await.unwrap()),
            Backend::Postgres(store) => Arc::new(PgApp::open(store.clone()).await.unwrap()),
        };
        let sent = Arc::new(Outbox::default());
        let registry = Arc::new(registry(app.clone(), sent.clone()));
        let worker = Worker::new(
            WorkerConfig::new("jobs-test"),
            store.clone(),
            registry.clone(),
            Arc::new(ManualClock::new(T0)),
        );
        Self {
            store,
            app,
            registry,
            worker,
            sent,
            _db: db,
        }
    }

    async fn enqueue(&self, job_type: &str, payload: Value) -> JobId {
        self.registry.validate(job_type, &payload).unwrap();
        self.store
            .job_insert(NewJob::new(job_type, payload, T0))
            .await
            .unwrap()
            .job
            .id
    }

    /// A user and its `user_created` job, committed together.
    async fn signup(&self, email: &str, age: i64, extra: Value) -> (i64, JobId) {
        let user = NewUser {
            email: email.into(),
            age,
            name: Some("Kim".into()),
            bio: None,
            is_active: true,
            additional_data: extra.as_object().cloned(),
        };
        let props = extra.as_object().cloned().unwrap_or_default();
        let (user, job) = self
            .app
            .user_insert_with_job(user, Box::new(move |u| UserCreated::job(u, props, T0)), T0)
            .await
            .unwrap();
        let payload = self.store.job_get(job).await.unwrap().payload;
        let payload: Value = serde_json::from_str(&payload).unwrap();
        self.registry.validate("user_created", &payload).unwrap();
        (user.id, job)
    }
}

async fn a_user_gets_one_welcome_email_however_many_jobs_onboard_it(engine: Engine) {
    let env = Env::new(engine).await;
    let (user_id, job) = env
        .signup(
            "kim@example.com",
            34,
            json!({"hobby": "chess", "location": "Paris", "score": 91}),
        )
        .await;
    // The same user's job enqueued a second time, as a duplicate delivery would.
    let payload: Value =
        serde_json::from_str(&env.store.job_get(job).await.unwrap().payload).unwrap();
    let again = env.enqueue("user_created", payload).await;

    env.worker.drain().await.unwrap();
    for id in [job, again] {
        assert_eq!(
            env.store.job_get(id).await.unwrap().status,
            JobStatus::Completed
        );
    }
    let profile = env.app.user_profile_get(user_id).await.unwrap();
    assert_eq!(
        profile.recommendation_tags,
        ["chess-communities", "chess-events"]
    );
    assert_eq!(
        (profile.region.as_deref(), profile.rank.as_deref()),
        (Some("europe"), Some("platinum"))
    );
    assert_eq!(env.app.signup_stats().await.unwrap(), [(T0.utc_day(), 1)]);

    let sent = env.sent.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one welcome email however often the job ran");
    assert_eq!(
        (sent[0].recipient.as_str(), sent[0].subject.as_str()),
        ("kim@example.com", "Welcome, Kim!")
    );
    let outbox = env.app.email_get(sent[0].id).await.unwrap();
    assert_eq!(outbox.sent_at, Some(T0));
    let deliveries = JobFilter {
        job_type: Some("send_email".into()),
        limit: 10,
        ..Default::default()
    };
    let deliveries = env.store.job_list(deliveries).await.unwrap().items;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, JobStatus::Completed);
}

async fn a_missing_user_fails_without_retry(engine: Engine) {
    let env = Env::new(engine).await;
    let id = env
        .enqueue(
            "user_created",
            json!({"user_id": 77, "user_data": {"id": 77, "email": "x@example.com", "age": 1}}),
        )
        .await;
    env.worker.drain().await.unwrap();
    let job = env.store.job_get(id).await.unwrap();
    assert_eq!((job.status, job.retry_count), (JobStatus::Failed, 0));
}

async fn data_analysis_of_values_and_of_a_cohort(engine: Engine) {
    let env = Env::new(engine).await;
    for (n, age) in [17, 25, 35, 45, 70].into_iter().enumerate() {
        env.signup(&format!("u{n}@example.com"), age, json!({}))
            .await;
    }
    let values = env
        .enqueue("data_analysis", json!({"values": [3, 1, 2, 10]}))
        .await;
    let cohort = env
        .enqueue(
            "data_analysis",
            json!({"cohort": {"min_age": 18, "max_age": 65}}),
        )
        .await;
    env.worker.drain().await.unwrap();

    let result = env.store.job_get(values).await.unwrap().result.unwrap();
    assert_eq!(result["source"], "values");
    let s = &result["summary"];
    assert_eq!(
        (s["count"].as_u64(), s["min"].as_f64(), s["max"].as_f64()),
        (Some(4), Some(1.0), Some(10.0))
    );
    assert_eq!(
        (s["mean"].as_f64(), s["median"].as_f64()),
        (Some(4.0), Some(2.5))
    );

    let result = env.store.job_get(cohort).await.unwrap().result.unwrap();
    assert_eq!(result["source"], "cohort_ages");
    assert_eq!(result["summary"]["count"], 3);
    assert_eq!(result["summary"]["mean"], 35.0);
}

async fn probe_fails_its_first_attempts_then_succeeds(engine: Engine) {
    let env = Env::new(engine).await;
    let id = env.enqueue("probe", json!({"fail_attempts": 1})).await;
    env.worker.run_once().await.unwrap();
    let job = env.store.job_get(id).await.unwrap();
    assert_eq!(job.status, JobStatus::RetryPending);
    assert_eq!(job.error_message.as_deref(), Some("probe failure 1 of 1"));
    env.store.job_retry(id, T0).await.unwrap_err(); // still retrying: not retryable by hand
    let due = job.scheduled_at;
    let worker = Worker::new(
        WorkerConfig::new("jobs-test"),
        env.store.clone(),
        env.registry.clone(),
        Arc::new(ManualClock::new(due)),
    );
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let job = env.store.job_get(id).await.unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Completed, 2));
    assert_eq!(job.result, Some(json!({"attempt": 2, "slept_ms": 0})));
}

async fn schemas_reject_bad_payloads_with_pointers(engine: Engine) {
    let env = Env::new(engine).await;
    let registry = &env.registry;
    let err = registry
        .validate("probe", &json!({"sleep_ms": -1, "nap": true}))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/sleep_ms") && text.contains("/nap"),
        "{text}"
    );
    assert!(
        registry
            .validate("data_analysis", &json!({"values": ["x"]}))
            .is_err()
    );
    assert!(
        registry
            .validate("data_analysis", &json!({"values": [1.5]}))
            .is_ok()
    );
    assert!(registry.validate("send_email", &json!({})).is_err());
    let mut types: Vec<_> = registry.job_types().collect();
    types.sort_unstable();
    assert_eq!(
        types,
        ["data_analysis", "probe", "send_email", "user_created"]
    );
}

tasuki_conformance::engine_tests!(
    a_user_gets_one_welcome_email_however_many_jobs_onboard_it,
    a_missing_user_fails_without_retry,
    data_analysis_of_values_and_of_a_cohort,
    probe_fails_its_first_attempts_then_succeeds,
    schemas_reject_bad_payloads_with_pointers,
);
