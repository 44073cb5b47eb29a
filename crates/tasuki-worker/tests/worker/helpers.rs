//! Test handlers and a fresh store per test.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tasuki_conformance::{Backend, Engine, TestDb};
use tasuki_core::{Clock, Job, JobId, ManualClock, NewJob, Store, Timestamp};
use tasuki_worker::{Done, Handler, JobContext, JobError, Registry, Worker, WorkerConfig};
use tokio::sync::{Notify, mpsc};

pub(crate) const T0: Timestamp = Timestamp::from_micros(1_767_225_600_000_000);

pub(crate) struct Env {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: ManualClock,
    pub(crate) started: mpsc::UnboundedReceiver<JobId>,
    pub(crate) gate: Arc<Notify>,
    pub(crate) db: TestDb,
    registry: Arc<Registry>,
}

impl Env {
    /// A fresh database; `engine_tests!` has checked that the engine is up.
    pub(crate) async fn new(engine: Engine) -> Self {
        let db = tasuki_conformance::fresh(engine)
            .await
            .expect("engine_tests! runs a test only where its engine is up");
        let (tx, started) = mpsc::unbounded_channel();
        let gate = Arc::new(Notify::new());
        let registry = Registry::new()
            .register(Echo)
            .register(Flaky {
                failures: AtomicI32::new(0),
            })
            .register(Panics)
            .register(Sleeps)
            .register(Permanent)
            .register(Effects {
                backend: db.backend.clone(),
            })
            .register(Signals {
                started: tx,
                gate: gate.clone(),
            });
        Self {
            store: db.store.clone(),
            clock: ManualClock::new(T0),
            started,
            gate,
            db,
            registry: Arc::new(registry),
        }
    }

    pub(crate) fn config(&self) -> WorkerConfig {
        let mut config = WorkerConfig::new("test-worker");
        config.concurrency = 4;
        config.job_timeout = Duration::from_millis(200);
        config
    }

    pub(crate) fn worker_with(&self, config: WorkerConfig, clock: Arc<dyn Clock>) -> Worker {
        Worker::new(config, self.store.clone(), self.registry.clone(), clock)
    }

    /// A worker on the pinned clock.
    pub(crate) fn worker(&self) -> Worker {
        self.worker_with(self.config(), Arc::new(self.clock.clone()))
    }

    pub(crate) async fn enqueue(&self, job_type: &str, payload: Value) -> JobId {
        self.store
            .job_insert(NewJob::new(job_type, payload, self.clock.now()))
            .await
            .unwrap()
            .job
            .id
    }

    pub(crate) async fn job(&self, id: JobId) -> Job {
        self.store.job_get(id).await.unwrap()
    }
}

/// Completes with its payload as the result.
struct Echo;

#[async_trait]
impl Handler for Echo {
    const JOB_TYPE: &'static str = "echo";
    /// Not the default: a schedule's jobs must get it from the registry.
    const MAX_RETRIES: i32 = 7;
    type Payload = Value;

    fn schema() -> Value {
        json!({"type": "object"})
    }

    async fn handle(&self, _: &JobContext, payload: Value) -> Result<Done, JobError> {
        Ok(Done::result(payload))
    }
}

/// Fails its first `fail` runs (counted in the handler), then completes.
struct Flaky {
    failures: AtomicI32,
}

#[async_trait]
impl Handler for Flaky {
    const JOB_TYPE: &'static str = "flaky";
    type Payload = FlakyPayload;

    fn schema() -> Value {
        json!({"type": "object", "required": ["fail"]})
    }

    async fn handle(&self, _: &JobContext, p: FlakyPayload) -> Result<Done, JobError> {
        if self.failures.fetch_add(1, Ordering::SeqCst) < p.fail {
            return Err(match p.after_ms {
                Some(ms) => JobError::retry_after("not yet", Duration::from_millis(ms)),
                None => JobError::retry("not yet"),
            });
        }
        Ok(Done::default())
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct FlakyPayload {
    fail: i32,
    after_ms: Option<u64>,
}

struct Panics;

#[async_trait]
impl Handler for Panics {
    const JOB_TYPE: &'static str = "panics";
    type Payload = Value;

    fn schema() -> Value {
        json!({})
    }

    async fn handle(&self, _: &JobContext, _: Value) -> Result<Done, JobError> {
        panic!("the handler lost its mind")
    }
}

/// Runs longer than the worker's job timeout.
struct Sleeps;

#[async_trait]
impl Handler for Sleeps {
    const JOB_TYPE: &'static str = "sleeps";
    type Payload = Value;

    fn schema() -> Value {
        json!({})
    }

    async fn handle(&self, _: &JobContext, _: Value) -> Result<Done, JobError> {
        std::future::pending().await
    }
}

struct Permanent;

#[async_trait]
impl Handler for Permanent {
    const JOB_TYPE: &'static str = "permanent";
    type Payload = Value;

    fn schema() -> Value {
        json!({})
    }

    async fn handle(&self, _: &JobContext, _: Value) -> Result<Done, JobError> {
        Err(JobError::permanent("this can never work"))
    }
}

/// Writes a row of `effects` (`row`) with its completion, and enqueues a
/// `follow_up` job of that type in the same transaction.
struct Effects {
    backend: Backend,
}

#[derive(serde::Deserialize)]
pub(crate) struct EffectsPayload {
    row: i64,
    follow_up: String,
}

#[async_trait]
impl Handler for Effects {
    const JOB_TYPE: &'static str = "effects";
    type Payload = EffectsPayload;

    fn schema() -> Value {
        json!({"type": "object", "required": ["row", "follow_up"]})
    }

    async fn handle(&self, ctx: &JobContext, p: EffectsPayload) -> Result<Done, JobError> {
        let follow_up = NewJob::new(p.follow_up, json!({}), ctx.now());
        let writes = tasuki_conformance::effect(&self.backend, p.row, Some(follow_up));
        Ok(Done::result(json!({"row": p.row})).with_writes(writes))
    }
}

/// Reports that it started, then waits at the gate when `wait` is set.
struct Signals {
    started: mpsc::UnboundedSender<JobId>,
    gate: Arc<Notify>,
}

#[async_trait]
impl Handler for Signals {
    const JOB_TYPE: &'static str = "signals";
    type Payload = Value;

    fn schema() -> Value {
        json!({"type": "object"})
    }

    async fn handle(&self, ctx: &JobContext, p: Value) -> Result<Done, JobError> {
        let _ = self.started.send(ctx.job_id);
        if p["wait"] == json!(true) {
            self.gate.notified().await;
        }
        Ok(Done::result(json!({"attempt": ctx.attempt})))
    }
}

/// Waits for the next "started" signal, failing the test after a deadline.
pub(crate) async fn next_started(env: &mut Env) -> JobId {
    tokio::time::timeout(Duration::from_secs(10), env.started.recv())
        .await
        .expect("a job should start within the deadline")
        .expect("the signal channel stays open")
}
